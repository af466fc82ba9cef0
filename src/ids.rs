//! The identifiers modules share (a small shared kernel): typed ids, so that a `ProductId`
//! cannot be passed where an `OrderId` is expected, in Rust or in SQL, and the human order number.
//! Every module names other modules' things by these, without depending on their code.

/// Declares a UUID newtype usable as a diesel `Uuid` column, in serde and in the OpenAPI document.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
            utoipa::ToSchema,
        )]
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                $name(uuid::Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Uuid, diesel::pg::Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>) -> diesel::serialize::Result {
                diesel::serialize::ToSql::<diesel::sql_types::Uuid, diesel::pg::Pg>::to_sql(&self.0, out)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Uuid, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                <uuid::Uuid as diesel::deserialize::FromSql<diesel::sql_types::Uuid, diesel::pg::Pg>>::from_sql(bytes).map($name)
            }
        }
    };
}

uuid_id!(
    /// The id of a product (`products.id`).
    ProductId
);
uuid_id!(
    /// The id of a category of products (`categories.id`).
    CategoryId
);
uuid_id!(
    /// The id of an order (`orders.id`).
    OrderId
);
uuid_id!(
    /// The id of a customer (`customers.id`).
    CustomerId
);
uuid_id!(
    /// The id of a charge attempt (`payments.id`).
    PaymentId
);
uuid_id!(
    /// The id of one refund of a payment (`payment_refunds.id`).
    RefundId
);

/// How people refer to an order: `AG-000042` for `orders.number` 42.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderNumber(pub i64);

impl OrderNumber {
    /// Accepts `AG-000042`, `ag-42` or `42`.
    pub fn parse(text: &str) -> Option<OrderNumber> {
        let text = text.trim();
        let digits = text.strip_prefix("AG-").or_else(|| text.strip_prefix("ag-")).unwrap_or(text);
        digits.parse::<i64>().ok().filter(|number| *number > 0).map(OrderNumber)
    }

    /// An order number as an operator may type it: `AG-000017`, `AG000017`, `ag 17`, `#17`, `17`.
    pub fn parse_loosely(text: &str) -> Option<OrderNumber> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        let compact = compact.strip_prefix('#').unwrap_or(&compact);
        let digits = match compact.get(..2) {
            Some(prefix) if prefix.eq_ignore_ascii_case("ag") => &compact[2..],
            _ => compact,
        };
        let digits = digits.strip_prefix('#').unwrap_or(digits);
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok().filter(|number| *number > 0).map(OrderNumber)
    }
}

impl std::fmt::Display for OrderNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AG-{:06}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_are_read_in_any_form_an_operator_types() {
        for typed in
            ["AG-000017", "AG000017", "ag-17", "Ag 0000 17", "#17", "17", " 000017 ", "AG-#17", " # AG-0000 17 "]
        {
            assert_eq!(OrderNumber::parse_loosely(typed), Some(OrderNumber(17)), "{typed}");
        }
        for not_a_number in ["", "AG-", "ada", "17a", "-", "0", "AG-0", "1234567890123456789", "AG-AG-17", "1.5", "é7"]
        {
            assert_eq!(OrderNumber::parse_loosely(not_a_number), None, "{not_a_number}");
        }
    }

    #[test]
    fn order_numbers_read_and_print_alike() {
        assert_eq!(OrderNumber(42).to_string(), "AG-000042");
        assert_eq!(OrderNumber::parse("AG-000042"), Some(OrderNumber(42)));
        assert_eq!(OrderNumber::parse("ag-42"), Some(OrderNumber(42)));
        assert_eq!(OrderNumber::parse("42"), Some(OrderNumber(42)));
        assert_eq!(OrderNumber::parse("AG-"), None);
        assert_eq!(OrderNumber::parse("x@y.z"), None);
    }
}
