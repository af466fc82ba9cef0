// @generated automatically by Diesel CLI.

diesel::table! {
    admin_login_failures (id) {
        id -> Int8,
        username -> Text,
        client_ip -> Text,
        failed_at -> Timestamptz,
    }
}

diesel::table! {
    admin_secrets (name) {
        name -> Text,
        value -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    admin_sessions (id) {
        id -> Uuid,
        key_hash -> Bytea,
        user_id -> Nullable<Uuid>,
        state -> Jsonb,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
    }
}

diesel::table! {
    admin_users (id) {
        id -> Uuid,
        username -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    cart_lines (cart_id, product_id) {
        cart_id -> Uuid,
        product_id -> Uuid,
        quantity -> Int4,
        unit_price_minor_added -> Int8,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    carts (id) {
        id -> Uuid,
        token_sha256 -> Bytea,
        revision -> Int4,
        order_id -> Nullable<Uuid>,
        order_revision -> Nullable<Int4>,
        closed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    categories (id) {
        id -> Uuid,
        slug -> Text,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    checkout_attempts (client_address, minute) {
        client_address -> Text,
        minute -> Timestamptz,
        attempts -> Int4,
    }
}

diesel::table! {
    customers (id) {
        id -> Uuid,
        email -> Text,
        name -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    event_deliveries (event_id, handler) {
        event_id -> Int8,
        handler -> Text,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    events (id) {
        id -> Int8,
        event_type -> Text,
        aggregate_type -> Text,
        aggregate_id -> Uuid,
        payload -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (scope, idempotency_key) {
        scope -> Text,
        idempotency_key -> Text,
        request_fingerprint -> Text,
        response_status -> Nullable<Int2>,
        response_body -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        response_location -> Nullable<Text>,
    }
}

diesel::table! {
    inventory_levels (product_id) {
        product_id -> Uuid,
        on_hand -> Int4,
        reserved -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    inventory_movements (id) {
        id -> Int8,
        product_id -> Uuid,
        kind -> Text,
        on_hand_delta -> Int4,
        reserved_delta -> Int4,
        reason -> Text,
        order_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    notifications (id) {
        id -> Uuid,
        event_id -> Int8,
        order_id -> Uuid,
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        text_body -> Text,
        html_body -> Text,
        message_id -> Text,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        next_attempt_at -> Timestamptz,
        round_attempts -> Int4,
    }
}

diesel::table! {
    notifications_delta (table_name, key) {
        table_name -> Text,
        key -> Text,
    }
}

diesel::table! {
    notifications_inbox (event_id) {
        event_id -> Int8,
        event_type -> Text,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    notifications_move (only_row) {
        only_row -> Bool,
        step -> Text,
        started_at -> Timestamptz,
        copied_at -> Nullable<Timestamptz>,
        copied_rows -> Nullable<Int8>,
        cut_over_at -> Nullable<Timestamptz>,
        caught_up_rows -> Nullable<Int8>,
        write_window_ms -> Nullable<Float8>,
        rolled_back_at -> Nullable<Timestamptz>,
        contracted_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    order_lines (order_id, line_no) {
        order_id -> Uuid,
        line_no -> Int2,
        product_id -> Uuid,
        sku -> Text,
        name -> Text,
        unit_price_minor -> Int8,
        quantity -> Int4,
        line_total_minor -> Int8,
    }
}

diesel::table! {
    order_refund_lines (refund_id, line_no) {
        refund_id -> Uuid,
        order_id -> Uuid,
        line_no -> Int2,
        quantity -> Int4,
        amount_minor -> Int8,
    }
}

diesel::table! {
    orders (id) {
        id -> Uuid,
        number -> Int8,
        customer_id -> Uuid,
        status -> Text,
        total_minor -> Int8,
        currency -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        shipped_at -> Nullable<Timestamptz>,
        status_token -> Text,
    }
}

diesel::table! {
    outbox_subscriptions (event_type, handler) {
        handler -> Text,
        event_type -> Text,
    }
}

diesel::table! {
    payment_refunds (id) {
        id -> Uuid,
        payment_id -> Uuid,
        amount_minor -> Int8,
        reason -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    payments (id) {
        id -> Uuid,
        order_id -> Uuid,
        status -> Text,
        amount_minor -> Int8,
        currency -> Text,
        card_brand -> Text,
        card_last4 -> Text,
        decline_code -> Nullable<Text>,
        gateway_reference -> Text,
        created_at -> Timestamptz,
        refunded_minor -> Int8,
    }
}

diesel::table! {
    products (id) {
        id -> Uuid,
        sku -> Text,
        name -> Text,
        description -> Text,
        price_minor -> Int8,
        active -> Bool,
        low_stock_threshold -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        category_id -> Nullable<Uuid>,
    }
}

diesel::joinable!(admin_sessions -> admin_users (user_id));
diesel::joinable!(cart_lines -> carts (cart_id));
diesel::joinable!(cart_lines -> products (product_id));
diesel::joinable!(carts -> orders (order_id));
diesel::joinable!(event_deliveries -> events (event_id));
diesel::joinable!(inventory_levels -> products (product_id));
diesel::joinable!(inventory_movements -> inventory_levels (product_id));
diesel::joinable!(notifications -> events (event_id));
diesel::joinable!(notifications -> orders (order_id));
diesel::joinable!(order_lines -> orders (order_id));
diesel::joinable!(order_lines -> products (product_id));
diesel::joinable!(order_refund_lines -> payment_refunds (refund_id));
diesel::joinable!(orders -> customers (customer_id));
diesel::joinable!(payment_refunds -> payments (payment_id));
diesel::joinable!(payments -> orders (order_id));
diesel::joinable!(products -> categories (category_id));

diesel::allow_tables_to_appear_in_same_query!(
    admin_login_failures,
    admin_secrets,
    admin_sessions,
    admin_users,
    cart_lines,
    carts,
    categories,
    checkout_attempts,
    customers,
    event_deliveries,
    events,
    idempotency_keys,
    inventory_levels,
    inventory_movements,
    notifications,
    notifications_delta,
    notifications_inbox,
    notifications_move,
    order_lines,
    order_refund_lines,
    orders,
    outbox_subscriptions,
    payment_refunds,
    payments,
    products,
);
