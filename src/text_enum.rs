//! Enums stored in `text` columns: statuses and kinds, each a fixed set of words that the column's
//! CHECK constraint admits. Declared once with [`text_enum!`], every such enum reads and writes
//! its column through diesel (`status.eq(PaymentStatus::Failed)`), serializes to JSON as the same
//! words, and is listed as an enum in the OpenAPI document.

/// Declares an enum mapped to the SQL type `Text`, one word per variant:
///
/// ```text
/// text_enum! {
///     /// What became of a charge attempt.
///     pub enum PaymentStatus {
///         Succeeded = "succeeded",
///         Failed = "failed",
///     }
/// }
/// ```
///
/// Text outside the list, read from the database, is a deserialization error, never a panic.
// The words are `tt`, not `literal`: a `literal` fragment reaches the derives wrapped in an
// invisible group, which utoipa does not look into, and the OpenAPI document would list the
// variants' Rust names instead of the words.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $text:tt,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
            utoipa::ToSchema,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $vis enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The word as a person reads it: `pending_payment` -> "Pending payment".
            pub fn label(self) -> String {
                $crate::text_enum::human_label(self.as_str())
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = std::str::from_utf8(value.as_bytes())?;
                $name::parse(text).ok_or_else(|| format!("{text:?} is not a known {}", stringify!($name)).into())
            }
        }
    };
}

pub(crate) use text_enum;

/// `pending_payment` -> `Pending payment`: the words of a status as an operator reads them.
pub fn human_label(word: &str) -> String {
    let mut label = word.replace('_', " ");
    if let Some(first) = label.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    label
}

#[cfg(test)]
mod tests {
    text_enum! {
        /// A light.
        enum Light {
            /// Go.
            Green = "green",
            AmberFlashing = "amber_flashing",
        }
    }

    #[test]
    fn words_read_and_print_alike_in_rust_and_json() {
        for light in Light::ALL {
            assert_eq!(Light::parse(light.as_str()), Some(light));
            assert_eq!(serde_json::to_value(light).unwrap(), light.as_str());
            assert_eq!(light.to_string(), light.as_str());
        }
        assert_eq!(Light::AmberFlashing.as_str(), "amber_flashing");
        assert_eq!(Light::parse("red"), None);
        assert!(serde_json::from_str::<Light>("\"red\"").is_err());
        let schema = serde_json::to_value(<Light as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(schema["enum"], serde_json::json!(["green", "amber_flashing"]));
    }

    #[test]
    fn labels_read_as_words_for_people() {
        assert_eq!(Light::AmberFlashing.label(), "Amber flashing");
        assert_eq!(Light::Green.label(), "Green");
        assert_eq!(super::human_label(""), "");
    }
}
