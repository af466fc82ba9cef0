//! The card gateway behind a small trait, so a real provider could replace the simulation.

use chrono::{Datelike, Utc};

use super::card::Card;

/// Why a gateway declined a card, in the codes well-known gateways use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclineCode {
    CardDeclined,
    InsufficientFunds,
    ExpiredCard,
}

impl DeclineCode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclineCode::CardDeclined => "card_declined",
            DeclineCode::InsufficientFunds => "insufficient_funds",
            DeclineCode::ExpiredCard => "expired_card",
        }
    }

    /// The message for a stored decline code.
    pub fn describe(code: &str) -> &'static str {
        [DeclineCode::CardDeclined, DeclineCode::InsufficientFunds, DeclineCode::ExpiredCard]
            .into_iter()
            .find(|known| known.as_str() == code)
            .map_or("The card was declined.", DeclineCode::message)
    }

    pub fn message(self) -> &'static str {
        match self {
            DeclineCode::CardDeclined => "The card was declined.",
            DeclineCode::InsufficientFunds => "The card has insufficient funds.",
            DeclineCode::ExpiredCard => "The card has expired.",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub reference: String,
    pub amount_minor: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    Captured { reference: String },
    Declined { code: DeclineCode, reference: String },
}

/// A card gateway: authorize an amount on a card, then capture it.
///
/// A real provider is a network call: it would be made with the provider's own idempotency key
/// and outside the database transaction that holds the order's row lock (authorize, commit,
/// capture). The simulation answers instantly, so Agora charges inside the transaction.
pub trait CardGateway: Send + Sync {
    fn authorize(&self, card: &Card, amount_minor: i64, currency: &str)
    -> Result<Authorization, (DeclineCode, String)>;
    fn capture(&self, authorization: &Authorization) -> String;

    fn charge(&self, card: &Card, amount_minor: i64, currency: &str) -> ChargeOutcome {
        match self.authorize(card, amount_minor, currency) {
            Ok(authorization) => ChargeOutcome::Captured { reference: self.capture(&authorization) },
            Err((code, reference)) => ChargeOutcome::Declined { code, reference },
        }
    }
}

/// Behaves like the test mode of well-known gateways: `4000000000000002` is declined,
/// `4000000000009995` has insufficient funds, `4000000000000069` (or a past expiry date) is
/// expired; every other valid number succeeds.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimulatedGateway;

impl CardGateway for SimulatedGateway {
    fn authorize(
        &self,
        card: &Card,
        amount_minor: i64,
        _currency: &str,
    ) -> Result<Authorization, (DeclineCode, String)> {
        let reference = format!("sim_{}", uuid::Uuid::new_v4().simple());
        let today = Utc::now().date_naive();
        let expired = (card.exp_year, card.exp_month) < (today.year(), today.month());
        let declined = match card.number.digits() {
            "4000000000000002" => Some(DeclineCode::CardDeclined),
            "4000000000009995" => Some(DeclineCode::InsufficientFunds),
            "4000000000000069" => Some(DeclineCode::ExpiredCard),
            _ if expired => Some(DeclineCode::ExpiredCard),
            _ => None,
        };
        match declined {
            Some(code) => Err((code, reference)),
            None => Ok(Authorization { reference, amount_minor }),
        }
    }

    fn capture(&self, authorization: &Authorization) -> String {
        authorization.reference.replacen("sim_", "sim_ch_", 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(number: &str, year: i64) -> Card {
        Card::parse(number, 12, year, "123").unwrap()
    }

    #[test]
    fn the_test_cards_behave_as_documented() {
        let gateway = SimulatedGateway;
        assert!(matches!(gateway.charge(&card("4242424242424242", 2099), 100, "EUR"), ChargeOutcome::Captured { .. }));
        let declined = |number| match gateway.charge(&card(number, 2099), 100, "EUR") {
            ChargeOutcome::Declined { code, .. } => Some(code),
            ChargeOutcome::Captured { .. } => None,
        };
        assert_eq!(declined("4000000000000002"), Some(DeclineCode::CardDeclined));
        assert_eq!(declined("4000000000009995"), Some(DeclineCode::InsufficientFunds));
        assert_eq!(declined("4000000000000069"), Some(DeclineCode::ExpiredCard));
        assert_eq!(declined("5555555555554444"), None);
        assert!(matches!(
            gateway.charge(&card("4242424242424242", 2020), 100, "EUR"),
            ChargeOutcome::Declined { code: DeclineCode::ExpiredCard, .. }
        ));
    }
}
