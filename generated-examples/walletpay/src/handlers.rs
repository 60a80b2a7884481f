//! Your connector. connector-gen created this file once and never touches it again.
//!
//! Operations mapped in connector.yaml are answered from the provider; the others
//! answer 501 Not Implemented. Implement a method here to answer that operation your
//! own way (the generated `crate::generated::mapped` functions stay callable). The
//! commented methods below show each signature, ready to uncomment.

use crate::generated::{Config, Connector};

/// What your handlers share: HTTP clients, credentials, caches.
pub struct Handlers {}

impl Handlers {
    /// Called once at start-up with the configuration read from the environment
    /// (`config.upstream` holds the provider settings from connector.yaml).
    pub fn new(config: &Config) -> Self {
        let _ = config;
        Self {}
    }
}

impl Connector for Handlers {
    // use crate::generated::{ConnectorError, Context, models, params::*};

    // `GET /accounts` (getAccounts): List accounts, oldest first
    // Mapped in connector.yaml; implementing it here replaces the mapping.
    // async fn get_accounts(
    //     &self,
    //     ctx: Context,
    //     params: GetAccountsParams,
    // ) -> Result<Vec<models::Account>, ConnectorError> {
    //     todo!()
    // }

    // `GET /accounts/{accountId}/balances` (getAccountBalances): Current balances of one account
    // Mapped in connector.yaml; implementing it here replaces the mapping.
    // async fn get_account_balances(
    //     &self,
    //     ctx: Context,
    //     params: GetAccountBalancesParams,
    // ) -> Result<models::Balances, ConnectorError> {
    //     todo!()
    // }

    // `GET /beneficiaries` (getBeneficiaries): List beneficiaries, oldest first
    // Mapped in connector.yaml; implementing it here replaces the mapping.
    // async fn get_beneficiaries(
    //     &self,
    //     ctx: Context,
    //     params: GetBeneficiariesParams,
    // ) -> Result<Vec<models::Beneficiary>, ConnectorError> {
    //     todo!()
    // }

    // `GET /transactions` (getTransactions): List transactions, least recently changed first
    // Mapped in connector.yaml; implementing it here replaces the mapping.
    // async fn get_transactions(
    //     &self,
    //     ctx: Context,
    //     params: GetTransactionsParams,
    // ) -> Result<Vec<models::Transaction>, ConnectorError> {
    //     todo!()
    // }

    // `POST /payouts` (createPayout): Initiate a payout to an external account (idempotent)
    // Mapped in connector.yaml; implementing it here replaces the mapping.
    // Runs at most once per idempotency key; when `ctx.initiation()` is `recovering()`,
    // an earlier attempt may have paid: send the provider `ctx.initiation().key()` or
    // look the payment up first.
    // async fn create_payout(
    //     &self,
    //     ctx: Context,
    //     body: models::PayoutRequest,
    // ) -> Result<models::Payout, ConnectorError> {
    //     todo!()
    // }

    // `POST /transfers` (createTransfer): Initiate a transfer between the provider's own accounts (idempotent)
    // Mapped in connector.yaml; implementing it here replaces the mapping.
    // Runs at most once per idempotency key; when `ctx.initiation()` is `recovering()`,
    // an earlier attempt may have paid: send the provider `ctx.initiation().key()` or
    // look the payment up first.
    // async fn create_transfer(
    //     &self,
    //     ctx: Context,
    //     body: models::TransferRequest,
    // ) -> Result<models::Transfer, ConnectorError> {
    //     todo!()
    // }
}
