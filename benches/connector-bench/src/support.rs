//! The test suite's mock providers, Formance poller and throwaway PostgreSQL, shared with the
//! benchmark as they are.

#[path = "../../../tests/support/formance.rs"]
pub mod formance;
#[path = "../../../tests/support/mock_cursor.rs"]
pub mod mock_cursor;
#[path = "../../../tests/support/mock_http.rs"]
pub mod mock_http;
#[path = "../../../tests/support/mock_pages.rs"]
pub mod mock_pages;
#[path = "../../../tests/support/postgres.rs"]
pub mod postgres;
