//! Your connector. connector-gen created this file once and never touches it again.
//!
//! Every protocol operation has a default in `Connector` that answers
//! 501 Not Implemented; implement here the ones your provider supports. The
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
    // async fn get_accounts(
    //     &self,
    //     ctx: Context,
    //     params: GetAccountsParams,
    // ) -> Result<Vec<models::Account>, ConnectorError> {
    //     todo!()
    // }

    // `GET /accounts/{accountId}/balances` (getAccountBalances): Current balances of one account
    // async fn get_account_balances(
    //     &self,
    //     ctx: Context,
    //     params: GetAccountBalancesParams,
    // ) -> Result<models::Balances, ConnectorError> {
    //     todo!()
    // }

    // `GET /beneficiaries` (getBeneficiaries): List beneficiaries, oldest first
    // async fn get_beneficiaries(
    //     &self,
    //     ctx: Context,
    //     params: GetBeneficiariesParams,
    // ) -> Result<Vec<models::Beneficiary>, ConnectorError> {
    //     todo!()
    // }

    // `GET /transactions` (getTransactions): List transactions, least recently changed first
    // async fn get_transactions(
    //     &self,
    //     ctx: Context,
    //     params: GetTransactionsParams,
    // ) -> Result<Vec<models::Transaction>, ConnectorError> {
    //     todo!()
    // }

    // `POST /payouts` (createPayout): Initiate a payout to an external account (idempotent)
    // async fn create_payout(
    //     &self,
    //     ctx: Context,
    //     body: models::PayoutRequest,
    // ) -> Result<models::Payout, ConnectorError> {
    //     todo!()
    // }

    // `POST /transfers` (createTransfer): Initiate a transfer between the provider's own accounts (idempotent)
    // async fn create_transfer(
    //     &self,
    //     ctx: Context,
    //     body: models::TransferRequest,
    // ) -> Result<models::Transfer, ConnectorError> {
    //     todo!()
    // }
}
