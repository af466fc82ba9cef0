//! Demo data, created through the modules' own functions (never by writing their tables
//! directly), so the seed obeys every rule the application does: stock moves through the ledger,
//! orders through checkout, payments through the gateway.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use rand::Rng;

use crate::catalog::{self, CategoryDraft, ProductDraft};
use crate::config::Config;
use crate::db::Db;
use crate::error::AppError;
use crate::ids::ProductId;
use crate::inventory::{self, MovementKind};
use crate::kernel::Module;

pub struct SeedPlan {
    pub products: u32,
    pub customers: u32,
    pub orders: u32,
}

/// The plan for the first start of an empty database.
pub const FIRST_START: SeedPlan = SeedPlan { products: 24, customers: 12, orders: 30 };

/// (slug, name) of the demo categories, each named by some demo product below.
const DEMO_CATEGORIES: &[(&str, &str)] =
    &[("kitchen", "Kitchen"), ("clothing", "Clothing"), ("desk", "Desk"), ("travel", "Travel"), ("home", "Home")];

/// (SKU, name, price in minor units, stock received, low-stock threshold, description, category slug)
const DEMO_PRODUCTS: &[(&str, &str, i64, i32, i32, &str, &str)] = &[
    ("MUG-CLASSIC", "Classic stoneware mug", 1290, 120, 10, "350 ml, dishwasher safe.", "kitchen"),
    ("MUG-TRAVEL", "Insulated travel mug", 2490, 45, 8, "Keeps coffee hot for 6 hours.", "travel"),
    ("TEE-BLACK-M", "Organic cotton T-shirt, black, M", 1990, 60, 10, "Heavyweight jersey.", "clothing"),
    ("TEE-WHITE-L", "Organic cotton T-shirt, white, L", 1990, 4, 10, "Heavyweight jersey.", "clothing"),
    ("HOOD-GREY-M", "Zip hoodie, grey, M", 4990, 25, 5, "Brushed fleece inside.", "clothing"),
    ("CAP-NAVY", "Baseball cap, navy", 1790, 3, 5, "Adjustable strap.", "clothing"),
    ("BAG-TOTE", "Canvas tote bag", 1490, 200, 20, "Carries 15 kg.", "travel"),
    ("NOTE-A5-DOT", "A5 notebook, dotted", 990, 150, 20, "120 g paper, 192 pages.", "desk"),
    ("NOTE-A4-LINE", "A4 notebook, lined", 1290, 80, 15, "100 g paper, 160 pages.", "desk"),
    ("PEN-FOUNTAIN", "Fountain pen, steel nib", 3490, 30, 5, "Medium nib, converter included.", "desk"),
    ("PEN-GEL-3", "Gel pens, pack of 3", 590, 2, 10, "Black, blue, red.", "desk"),
    ("STICKER-SET", "Sticker set", 490, 300, 30, "Twelve vinyl stickers.", "desk"),
    ("POSTER-A2", "Architecture poster, A2", 2290, 40, 5, "Matte, 200 g paper.", "home"),
    ("BOTTLE-750", "Steel water bottle, 750 ml", 2790, 55, 10, "Double-walled.", "travel"),
    ("SOCKS-2P", "Wool socks, two pairs", 1590, 7, 8, "Merino blend.", "clothing"),
    ("KEYRING", "Brass keyring", 890, 90, 10, "Engraved logo.", "travel"),
    ("BEANIE-RED", "Knit beanie, red", 2190, 18, 5, "Recycled wool.", "clothing"),
    ("UMBRELLA", "Compact umbrella", 2990, 12, 5, "Windproof to 80 km/h.", "travel"),
    ("APRON", "Kitchen apron", 2590, 22, 5, "Waxed canvas.", "kitchen"),
    ("COASTER-4", "Cork coasters, set of 4", 1190, 65, 10, "Heat resistant.", "kitchen"),
    ("CANDLE-CEDAR", "Cedar scented candle", 1890, 0, 5, "40 hours of burn time.", "home"),
    ("PUZZLE-1000", "Jigsaw puzzle, 1000 pieces", 2490, 16, 4, "Illustrated city map.", "home"),
    ("DESK-MAT", "Felt desk mat", 3290, 9, 4, "80 x 30 cm.", "desk"),
    ("LAMP-CLIP", "Clip-on reading lamp", 3990, 11, 3, "USB-C, three brightness levels.", "desk"),
];

/// Any fixed number; the same in every agora process.
const SEED_LOCK_KEY: i64 = 0x4147_4f52_415f_5345; // "AGORA_SE"

/// First start: seeds demo data when the catalog is empty. A session advisory lock makes
/// several agora processes starting at once on an empty database seed it once.
pub fn seed_demo_if_empty(db: &Db, config: &Config) -> Result<(), AppError> {
    // The lock is not any one module's: it is held on a connection of its own, as the login user,
    // while each step of the seed runs as its module on a pooled connection.
    // A connection outside the pool, so that a pool of one still has a connection for the steps.
    let lock = &mut crate::db::connect(&config.direct_database_url).map_err(AppError::internal)?;
    diesel::sql_query("SELECT pg_advisory_lock($1)").bind::<BigInt, _>(SEED_LOCK_KEY).execute(lock)?;
    let seeded = match db.run_blocking(Module::Catalog.op("is_empty"), catalog::is_empty) {
        Ok(true) => seed_in(db, config, &FIRST_START, true, &Unobserved).map(Some),
        Ok(false) => Ok(None),
        Err(error) => Err(error),
    };
    diesel::sql_query("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(SEED_LOCK_KEY).execute(lock)?;
    if let Some(report) = seeded? {
        log::info!("seeded demo data into the empty database: {report} (AGORA_SEED=none skips this)");
    }
    Ok(())
}

/// `agora seed`: adds demo data whatever is there already.
pub fn seed(db: &Db, config: &Config, plan: &SeedPlan, progress: &dyn Progress) -> Result<String, AppError> {
    seed_in(db, config, plan, false, progress)
}

/// Told of the seed's progress: `agora seed` draws a bar on a terminal.
pub trait Progress {
    /// A stage of `total` steps begins.
    fn stage(&self, name: &'static str, total: u64);
    fn step(&self);
}

/// For seeding without anyone watching (the first start).
pub struct Unobserved;

impl Progress for Unobserved {
    fn stage(&self, _name: &'static str, _total: u64) {}
    fn step(&self) {}
}

/// Each product, receipt and order commits on its own, through the modules' functions, so the
/// demo orders get distinct times as real ones would.
fn seed_in(
    db: &Db,
    config: &Config,
    plan: &SeedPlan,
    first_start: bool,
    progress: &dyn Progress,
) -> Result<String, AppError> {
    let mut rng = rand::rng();
    // Later seeds add products beside the first ones: their SKUs carry a batch tag.
    let tag: String = if first_start {
        String::new()
    } else {
        (0..4).map(|_| char::from(b'A' + rng.random_range(0..26u8))).collect()
    };
    if plan.products > 0 {
        db.run_blocking(Module::Catalog.op("seed_categories"), seed_categories)?;
    }
    let mut products: Vec<(ProductId, i32)> = Vec::new();
    progress.stage("products", u64::from(plan.products));
    for index in 0..plan.products as usize {
        let (base_sku, name, price, stock, threshold, description, category) =
            DEMO_PRODUCTS[index % DEMO_PRODUCTS.len()];
        let round = index / DEMO_PRODUCTS.len();
        let sku = match (tag.is_empty(), round) {
            (true, 0) => base_sku.to_owned(),
            (true, round) => format!("{base_sku}-{round}"),
            (false, 0) => format!("{base_sku}-{tag}"),
            (false, round) => format!("{base_sku}-{tag}-{round}"),
        };
        let draft = ProductDraft {
            sku,
            name: name.to_owned(),
            description: Some(description.to_owned()),
            price_minor: price,
            low_stock_threshold: Some(i64::from(threshold)),
            category: Some(category.to_owned()),
        };
        let product =
            db.run_blocking(Module::Catalog.op("seed_product"), |conn| catalog::create_product(conn, draft))?;
        // Orders take from what was received: receive enough for them, keeping low items low.
        let received = if stock > 0 { stock + 2 * threshold } else { 0 };
        if received > 0 {
            db.run_blocking(Module::Inventory.op("seed_stock"), |conn| {
                inventory::adjust(
                    conn,
                    product.id,
                    i64::from(received),
                    MovementKind::Receipt,
                    "opening stock (demo data)",
                )
            })?;
        }
        products.push((product.id, received));
        progress.step();
    }
    progress.stage("orders", u64::from(plan.orders));
    let orders = db.run_blocking(Module::Orders.op("seed_orders"), |conn| {
        crate::orders::seed_orders(conn, config, &products, plan.customers, plan.orders, &mut rng, &|| progress.step())
    })?;
    // Bring the low items back to their demo levels once orders have taken their share.
    for (index, (product_id, _)) in products.iter().enumerate() {
        let target = DEMO_PRODUCTS[index % DEMO_PRODUCTS.len()].3;
        db.run_blocking(Module::Inventory.op("seed_stock"), |conn| {
            let level = inventory::stock_level(conn, *product_id)?;
            let excess = level.available() - target;
            if excess > 0 && level.on_hand - excess >= level.reserved {
                inventory::adjust(
                    conn,
                    *product_id,
                    -i64::from(excess),
                    MovementKind::Adjustment,
                    "stock count (demo data)",
                )?;
            }
            Ok::<_, inventory::InventoryError>(())
        })?;
    }
    Ok(format!("{} products with stock, {} customers, {orders}", plan.products, plan.customers))
}

/// The demo categories a later seed finds in place are kept as they are.
fn seed_categories(conn: &mut PgConnection) -> Result<(), catalog::CatalogError> {
    for (slug, name) in DEMO_CATEGORIES {
        if catalog::category_by_slug(conn, slug)?.is_none() {
            catalog::create_category(conn, CategoryDraft { slug: (*slug).to_owned(), name: (*name).to_owned() })?;
        }
    }
    Ok(())
}
