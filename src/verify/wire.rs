//! What `verify` needs to know of the protocol, read from the protocol model: for each list
//! Formance polls, its path, parameters, time field and item shape; the balances operation;
//! the payment initiations and where their transactions show up again. A new spec version
//! that renames a field, grows an enum or moves a path needs no change here.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::ir::{LinkTarget, Method, ParamLocation, Protocol, Shape, StringFormat};

/// The three lists Formance's poller walks, each by its operationId in the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Accounts,
    Beneficiaries,
    Transactions,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Accounts, Kind::Beneficiaries, Kind::Transactions];

    pub fn operation(self) -> &'static str {
        match self {
            Kind::Accounts => "getAccounts",
            Kind::Beneficiaries => "getBeneficiaries",
            Kind::Transactions => "getTransactions",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Accounts => "accounts",
            Kind::Beneficiaries => "beneficiaries",
            Kind::Transactions => "transactions",
        }
    }
}

/// One polled list.
#[derive(Clone, Debug)]
pub struct ListOp {
    pub operation: String,
    pub path: String,
    pub page_param: String,
    pub page_size_param: String,
    /// `sort` and the value Formance sends (`updatedAt:asc`), when the spec has the parameter.
    pub sort: Option<(String, String)>,
    /// `updatedAtFrom`: the state, sent at second precision.
    pub filter_param: String,
    /// `updatedAt`: the item field the state is taken from.
    pub time_field: String,
    pub item: Shape,
}

#[derive(Clone, Debug)]
pub struct BalancesOp {
    pub operation: String,
    /// With `{accountId}`-style placeholder `param`.
    pub path: String,
    pub param: String,
    pub shape: Shape,
    /// The answer's field Formance takes as the account reference (`accountID`).
    pub account_field: String,
}

#[derive(Clone, Debug)]
pub struct InitiationOp {
    pub operation: String,
    pub path: String,
    pub request: Shape,
    pub created: Shape,
    pub key_field: String,
    pub id_field: String,
    /// The type its transaction must carry (`PAYOUT`).
    pub transaction_type: Option<String>,
    /// The request's field names, for building a body from the spec.
    pub request_fields: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Wire {
    pub protocol: Protocol,
    pub lists: BTreeMap<Kind, ListOp>,
    pub balances: Option<BalancesOp>,
    pub initiations: Vec<InitiationOp>,
    pub link: Option<LinkTarget>,
}

impl Wire {
    /// Reads the lists, balances and initiations; an operation that is there but not shaped
    /// as Formance uses it is an error naming it.
    pub fn new(protocol: Protocol) -> Result<Wire, String> {
        let mut lists = BTreeMap::new();
        for kind in Kind::ALL {
            if let Some(op) = protocol.operation(kind.operation()) {
                lists.insert(kind, list_op(&protocol, op)?);
            }
        }
        let balances = balances_op(&protocol)?;
        let initiations = protocol
            .initiations()
            .filter_map(|(op, initiation)| initiation_op(&protocol, op, initiation))
            .collect();
        let link = protocol.link.clone();
        Ok(Wire {
            protocol,
            lists,
            balances,
            initiations,
            link,
        })
    }

    /// The bundled protocol spec's wire, read once.
    pub fn bundled() -> Arc<Wire> {
        static BUNDLED: OnceLock<Arc<Wire>> = OnceLock::new();
        BUNDLED
            .get_or_init(|| {
                let source = crate::diagnostics::SourceFile::new(
                    crate::spec::BUNDLED_NAME,
                    crate::spec::BUNDLED,
                );
                let protocol =
                    crate::load_protocol(&source).expect("the bundled spec lowers cleanly");
                Arc::new(Wire::new(protocol).expect("the bundled spec has Formance's lists"))
            })
            .clone()
    }

    pub fn list(&self, kind: Kind) -> Option<&ListOp> {
        self.lists.get(&kind)
    }
}

fn list_op(protocol: &Protocol, op: &crate::ir::Operation) -> Result<ListOp, String> {
    let problem = |what: &str| format!("{} ({} {}): {what}", op.id, op.method.as_str(), op.path);
    let Some(Shape::Array(array)) = &op.success.shape else {
        return Err(problem("the answer is not a list"));
    };
    let query = |name: &str| {
        op.params
            .iter()
            .find(|p| p.location == ParamLocation::Query && p.name == name)
            .map(|p| p.name.clone())
    };
    let filter = op
        .params
        .iter()
        .find(|p| {
            p.location == ParamLocation::Query
                && matches!(&p.shape, Shape::String(s) if s.format == StringFormat::DateTime)
        })
        .ok_or_else(|| problem("no date-time filter parameter"))?;
    let time_field = filter
        .name
        .strip_suffix("From")
        .ok_or_else(|| problem("the date-time filter is not named `<field>From`"))?
        .to_owned();
    let has_time_field = protocol.object(&array.items).is_some_and(|(_, item)| {
        item.fields.iter().any(|f| {
            f.name == time_field
                && matches!(protocol.resolve(&f.shape), Shape::String(s) if s.format == StringFormat::DateTime)
        })
    });
    if !has_time_field {
        return Err(problem(&format!("items have no date-time `{time_field}`")));
    }
    Ok(ListOp {
        operation: op.id.clone(),
        path: op.path.clone(),
        page_param: query("page").ok_or_else(|| problem("no `page` parameter"))?,
        page_size_param: query("pageSize").ok_or_else(|| problem("no `pageSize` parameter"))?,
        sort: query("sort").map(|name| (name, format!("{time_field}:asc"))),
        filter_param: filter.name.clone(),
        time_field,
        item: (*array.items).clone(),
    })
}

fn balances_op(protocol: &Protocol) -> Result<Option<BalancesOp>, String> {
    let Some(op) = protocol.operation("getAccountBalances") else {
        return Ok(None);
    };
    let param = op
        .params
        .iter()
        .find(|p| p.location == ParamLocation::Path)
        .ok_or_else(|| format!("{}: no path parameter for the account", op.id))?;
    let shape = op
        .success
        .shape
        .clone()
        .ok_or_else(|| format!("{}: the answer has no body", op.id))?;
    let account_field = protocol
        .object(&shape)
        .and_then(|(_, object)| {
            object
                .fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case("accountID"))
        })
        .map(|f| f.name.clone())
        .ok_or_else(|| format!("{}: the answer has no account id field", op.id))?;
    Ok(Some(BalancesOp {
        operation: op.id.clone(),
        path: op.path.clone(),
        param: param.name.clone(),
        shape,
        account_field,
    }))
}

fn initiation_op(
    protocol: &Protocol,
    op: &crate::ir::Operation,
    initiation: &crate::ir::Initiation,
) -> Option<InitiationOp> {
    if op.method != Method::Post {
        return None;
    }
    let request = op.body.as_ref()?.shape.clone();
    let created = op.success.shape.clone()?;
    let request_fields = protocol
        .object(&request)?
        .1
        .fields
        .iter()
        .map(|f| f.name.clone())
        .collect();
    Some(InitiationOp {
        operation: op.id.clone(),
        path: op.path.clone(),
        request,
        created,
        key_field: initiation.key_field.clone(),
        id_field: initiation.id_field.clone(),
        transaction_type: initiation.transaction_type.clone(),
        request_fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_spec_gives_formances_lists() {
        let wire = Wire::bundled();
        let transactions = wire.list(Kind::Transactions).unwrap();
        assert_eq!(transactions.path, "/transactions");
        assert_eq!(transactions.filter_param, "updatedAtFrom");
        assert_eq!(transactions.time_field, "updatedAt");
        assert_eq!(
            transactions.sort,
            Some(("sort".into(), "updatedAt:asc".into()))
        );
        assert_eq!(wire.list(Kind::Accounts).unwrap().time_field, "createdAt");
        assert_eq!(wire.balances.as_ref().unwrap().account_field, "accountID");
        let kinds: Vec<_> = wire
            .initiations
            .iter()
            .map(|i| i.transaction_type.clone())
            .collect();
        assert_eq!(
            kinds,
            [Some("PAYOUT".to_owned()), Some("TRANSFER".to_owned())]
        );
    }
}
