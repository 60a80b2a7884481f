//! Words providers use, and the helpers that compare names the way providers vary them
//! (`created_at`, `createdAt`, `CreatedAt`, `created-at` are one name).

/// Lower case without separators: `created_at[gte]` -> `createdatgte`.
pub fn squash(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether `name` is one of `words`, compared squashed.
pub fn is_one_of(name: &str, words: &[&str]) -> bool {
    let name = squash(name);
    words.iter().any(|w| squash(w) == name)
}

pub fn contains_any(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

/// Static path segments, lower case, with `-` as `_`: `/v1/balance-accounts/{id}` ->
/// `["v1", "balance_accounts"]`.
pub fn static_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .map(|s| s.to_lowercase().replace('-', "_"))
        .collect()
}

pub fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

/// Verbs some providers put after the resource (`/accounts/find`, `/accounts/get`).
pub const LIST_VERBS: &[&str] = &["find", "search", "list", "get", "sync", "all", "query"];

/// Words that mark an endpoint as something other than money movements a ledger wants.
pub const NEGATIVE: &[&str] = &[
    "card",
    "refund",
    "capture",
    "webhook",
    "dispute",
    "simulat",
    "sandbox",
    "event",
    "reports",
    "report_run",
    "export",
    "statement_file",
    "document",
    "token",
    "session",
    "link",
    "notification",
    "fee",
    "tax",
    "quote",
    "invoice",
    "intent",
    "charge",
    "subscription",
    "checkout",
    "terminal",
    "authoriz",
    "authoris",
    "hold",
    "limit",
    "setting",
    "config",
    "verif",
    "onboard",
    "mandate",
    "cancel",
    "reverse",
    "decline",
    "confirm",
    "approve",
    "validate",
    "preview",
    "estimate",
    "schedule",
    "bulk",
    "batch_item",
    "template",
    "requirement",
    "exchange_rate",
    "sweep",
    "dispute",
    "chargeback",
    "loan",
    "grant",
    "capital",
    "identity",
    "kyc",
    "fraud",
    "risk",
    "signature",
    "orders",
    "customer_balance",
    "cash_balance",
    "issuing",
    "climate",
    "tax",
    "test_helper",
];

/// Cursor parameters whose value is the last record's own field.
pub const RECORD_CURSOR_PARAMS: &[&str] = &[
    "starting_after",
    "startingAfter",
    "after",
    "after_id",
    "starting_after_id",
    "from_id",
    "marker",
    "last_id",
    "lastId",
    "since_id",
];

/// Cursor parameters whose value the previous page's body gives.
pub const BODY_CURSOR_PARAMS: &[&str] = &[
    "cursor",
    "page_token",
    "pageToken",
    "next_token",
    "nextToken",
    "continuation_token",
    "continuationToken",
    "seekPosition",
    "next_cursor",
    "pagination_token",
    "paginationToken",
    "page_cursor",
    "after_cursor",
    "nextPageToken",
    "next_page_token",
    "cursorNext",
    "page[after]",
    "starting_after",
    "after",
];

pub const BODY_CURSOR_FIELDS: &[&str] = &[
    "next_cursor",
    "nextCursor",
    "cursor",
    "next_page_token",
    "nextPageToken",
    "next_token",
    "nextToken",
    "seekPositionForNext",
    "continuation_token",
    "continuationToken",
    "next_page_cursor",
    "cursorNext",
    "after",
    "page_token",
    "pagination_token",
    "next_key",
];

pub const HAS_MORE_FIELDS: &[&str] = &[
    "has_more",
    "hasMore",
    "has_next_page",
    "hasNextPage",
    "has_next",
    "hasNext",
    "more",
];

pub const NEXT_URL_FIELDS: &[&str] = &[
    "next",
    "next_url",
    "nextUrl",
    "next_page_url",
    "nextPageUrl",
    "next_link",
    "nextLink",
    "next_page",
];

pub const PAGE_PARAMS: &[&str] = &[
    "page",
    "page_number",
    "pageNumber",
    "page[number]",
    "pageIndex",
    "page_index",
    "pageNo",
    "page_no",
];

pub const OFFSET_PARAMS: &[&str] = &["offset", "skip", "start", "page[offset]", "from"];

pub const PAGE_SIZE_PARAMS: &[&str] = &[
    "limit",
    "per_page",
    "perPage",
    "page_size",
    "pageSize",
    "size",
    "count",
    "max_results",
    "maxResults",
    "page[size]",
    "page[limit]",
    "max",
    "top",
    "results_per_page",
    "itemsPerPage",
];

pub const TOTAL_PAGES_FIELDS: &[&str] = &[
    "total_pages",
    "totalPages",
    "page_count",
    "pageCount",
    "pages",
    "total_page",
    "pagesTotal",
];

pub const TOTAL_FIELDS: &[&str] = &[
    "total",
    "total_count",
    "totalCount",
    "total_items",
    "totalItems",
    "total_records",
    "totalRecords",
    "total_entries",
    "totalElements",
    "total_elements",
    "itemsTotal",
    "total_results",
    "totalResults",
];

/// Where list records are, by name.
pub const RECORD_ARRAYS: &[&str] = &[
    "data", "items", "results", "content", "records", "entries", "elements", "values", "list",
    "rows", "objects",
];

pub const ID_FIELDS: &[&str] = &[
    "id",
    "token",
    "uuid",
    "Id",
    "ID",
    "reference",
    "transaction_id",
    "transactionId",
    "account_id",
    "accountId",
    "payment_id",
    "guid",
];

pub const CREATED_FIELDS: &[&str] = &[
    "created",
    "created_at",
    "createdAt",
    "creation_date",
    "creationDate",
    "CreationDate",
    "created_date",
    "createdDate",
    "created_time",
    "createdTime",
    "create_time",
    "createTime",
    "created_on",
    "createdOn",
    "date_created",
    "creationTime",
    "creation_time",
    "date",
    "timestamp",
    "transaction_date",
    "transactionDate",
    "booking_date",
    "bookingDate",
    "value_date",
    "posted_at",
    "postedDate",
    "booked_at",
    "time",
    "opened_at",
    "opened_date",
];

pub const UPDATED_FIELDS: &[&str] = &[
    "updated",
    "updated_at",
    "updatedAt",
    "last_updated",
    "lastUpdated",
    "modified",
    "modified_at",
    "modifiedAt",
    "modified_date",
    "modifiedDate",
    "last_modified",
    "lastModified",
    "update_time",
    "updateTime",
    "updated_time",
    "updatedTime",
    "changed_at",
    "changedAt",
    "last_modified_at",
    "lastModifiedDate",
    "updated_date",
    "updatedDate",
    "updated_on",
];

pub const AMOUNT_FIELDS: &[&str] = &[
    "amount",
    "value",
    "amount_money",
    "amountMoney",
    "transaction_amount",
    "transactionAmount",
    "net",
    "Amount",
    "total_amount",
    "totalAmount",
    "money",
    "sum",
    "DebitedFunds",
];

pub const CURRENCY_FIELDS: &[&str] = &[
    "currency",
    "currency_code",
    "currencyCode",
    "iso_currency_code",
    "Currency",
    "ccy",
    "currency_iso",
];

pub const STATUS_FIELDS: &[&str] = &[
    "status",
    "state",
    "Status",
    "transaction_status",
    "transactionStatus",
    "result",
];

pub const TYPE_FIELDS: &[&str] = &[
    "type",
    "kind",
    "category",
    "transaction_type",
    "transactionType",
    "Type",
    "Nature",
    "direction",
    "entry_type",
];

pub const NAME_FIELDS: &[&str] = &[
    "name",
    "display_name",
    "displayName",
    "nickname",
    "account_name",
    "accountName",
    "label",
    "alias",
    "title",
    "business_name",
    "description",
    "company_name",
    "legal_name",
];

pub const OWNER_FIELDS: &[&str] = &[
    "account_holder_name",
    "accountHolderName",
    "holder_name",
    "holderName",
    "owner_name",
    "ownerName",
    "OwnerName",
    "beneficiary_name",
    "beneficiaryName",
    "bank_account_holder_name",
    "name",
    "full_name",
    "fullName",
    "display_name",
    "displayName",
    "nickname",
    "legal_name",
];

/// The protocol's transaction statuses by the words providers use for them.
pub const STATUS_WORDS: &[(&str, &[&str])] = &[
    (
        "SUCCEEDED",
        &[
            "succeeded",
            "success",
            "successful",
            "completed",
            "complete",
            "settled",
            "paid",
            "posted",
            "booked",
            "processed",
            "executed",
            "done",
            "cleared",
            "sent",
            "credited",
            "funds_converted",
            "outgoing_payment_sent",
            "approved",
            "accepted",
        ],
    ),
    (
        "PENDING",
        &[
            "pending",
            "processing",
            "in_progress",
            "created",
            "submitted",
            "initiated",
            "waiting",
            "queued",
            "in_transit",
            "requires_action",
            "awaiting",
            "on_hold",
            "new",
            "open",
            "ready",
            "incoming_payment_waiting",
            "awaiting_authorisation",
            "awaiting_funds",
            "scheduled",
            "unclaimed",
            "onhold",
            "pending_approval",
        ],
    ),
    (
        "FAILED",
        &[
            "failed", "failure", "declined", "rejected", "error", "errored", "bounced", "returned",
            "denied", "blocked",
        ],
    ),
    (
        "CANCELLED",
        &[
            "canceled",
            "cancelled",
            "voided",
            "void",
            "cancelled_by_user",
        ],
    ),
    ("EXPIRED", &["expired", "timed_out", "timeout"]),
    ("REFUNDED", &["refunded"]),
    ("DISPUTE", &["disputed", "dispute"]),
    (
        "AUTHORISATION",
        &["authorized", "authorised", "authorization", "authorisation"],
    ),
    ("CAPTURE", &["captured"]),
];

pub const TYPE_WORDS: &[(&str, &[&str])] = &[
    (
        "PAYIN",
        &[
            "payin",
            "pay_in",
            "charge",
            "payment",
            "deposit",
            "credit",
            "incoming",
            "inbound",
            "received",
            "topup",
            "top_up",
            "collection",
            "funding",
            "receipt",
            "inflow",
            "direct_debit_in",
            "incoming_payment",
        ],
    ),
    (
        "PAYOUT",
        &[
            "payout",
            "pay_out",
            "withdrawal",
            "outgoing",
            "outbound",
            "debit",
            "bank_transfer_out",
            "outflow",
            "disbursement",
        ],
    ),
    (
        "TRANSFER",
        &[
            "transfer",
            "internal",
            "internal_transfer",
            "book",
            "book_transfer",
            "conversion",
            "sweep",
        ],
    ),
];

/// The protocol value a provider's word stands for, if the lexicon knows it.
pub fn protocol_value(table: &[(&'static str, &[&str])], word: &str) -> Option<&'static str> {
    let squashed = squash(word);
    table
        .iter()
        .find(|(_, words)| words.iter().any(|w| squash(w) == squashed))
        .map(|(value, _)| *value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_across_conventions() {
        assert!(is_one_of("createdAt", &["created_at"]));
        assert!(is_one_of("Created-At", &["created_at"]));
        assert!(!is_one_of("created", &["created_at"]));
        assert_eq!(
            static_segments("/v1/balance-accounts/{id}/x"),
            ["v1", "balance_accounts", "x"]
        );
        assert_eq!(path_params("/a/{b}/c/{d}"), ["b", "d"]);
    }

    #[test]
    fn provider_words_become_protocol_values() {
        assert_eq!(protocol_value(STATUS_WORDS, "Succeeded"), Some("SUCCEEDED"));
        assert_eq!(protocol_value(STATUS_WORDS, "in-progress"), Some("PENDING"));
        assert_eq!(protocol_value(STATUS_WORDS, "wobbly"), None);
        assert_eq!(protocol_value(TYPE_WORDS, "PAYOUT"), Some("PAYOUT"));
    }
}
