//! The admin's stock overview: emptiest first by default, sortable, numbered page by page.

use diesel::prelude::*;

use super::StockLevel;
use crate::admin::listing::{COUNT_CAP, Column, Numbered, PER_PAGE, Sort};
use crate::kernel::Module;

pub const LEVEL_COLUMNS: [Column; 3] = [Column::asc("available"), Column::asc("sku"), Column::desc("on_hand")];

/// Low stock compares each level with its own product's threshold, which no index answers: the
/// low-only list is not counted (that would read every level), only paged.
pub fn admin_levels(
    conn: &mut PgConnection,
    low_only: bool,
    sort: Sort,
    page: i64,
) -> QueryResult<Numbered<StockLevel>> {
    crate::as_module!(conn, Module::Inventory);
    use crate::schema::{inventory_levels, products};
    let available = inventory_levels::on_hand - inventory_levels::reserved;
    let mut query = inventory_levels::table
        .inner_join(products::table)
        .select(StockLevel::as_select())
        .limit(PER_PAGE + 1)
        .offset(Numbered::<()>::offset(page))
        .into_boxed();
    if low_only {
        query = query.filter(available.le(products::low_stock_threshold));
    }
    let query = match (sort.key, sort.descending) {
        ("sku", false) => query.order(products::sku.asc()),
        ("sku", true) => query.order(products::sku.desc()),
        ("on_hand", false) => query.order((inventory_levels::on_hand.asc(), inventory_levels::product_id.asc())),
        ("on_hand", true) => query.order((inventory_levels::on_hand.desc(), inventory_levels::product_id.asc())),
        // Matches the (on_hand - reserved, product_id) index.
        (_, false) => query.order((available.asc(), inventory_levels::product_id.asc())),
        (_, true) => query.order((available.desc(), inventory_levels::product_id.desc())),
    };
    let rows = query.load(conn)?;
    if low_only {
        return Ok(Numbered::uncounted(rows, page));
    }
    let counted = inventory_levels::table
        .select(inventory_levels::product_id)
        .limit(COUNT_CAP + 1)
        .load::<uuid::Uuid>(conn)?
        .len() as i64;
    let mut rows = rows;
    rows.truncate(PER_PAGE as usize);
    Ok(Numbered::new(rows, page, counted))
}
