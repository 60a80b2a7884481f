//! How the connector authenticates: the declared security schemes, preferring the kinds the
//! mapping language has, or a login operation that issues a token header.

use super::lexicon::{contains_any, squash};
use super::{AuthGuess, AuthKind};
use crate::draft::model::{Api, Location, SchemeKind};

pub fn detect(api: &Api) -> AuthGuess {
    if let Some(login) = login(api) {
        return login;
    }
    let used = used_schemes(api);
    let mut ranked: Vec<(u8, &crate::draft::model::Scheme)> = api
        .schemes
        .iter()
        .filter_map(|s| rank(&s.kind).map(|r| (r, s)))
        .collect();
    // Schemes the operations actually require come first; then the kinds connectors use.
    ranked.sort_by_key(|(rank, s)| (!used.contains(&s.name), *rank));
    let Some((_, scheme)) = ranked.first() else {
        return AuthGuess {
            kind: AuthKind::Unknown,
            extra_headers: Vec::new(),
            confidence: 0.3,
            evidence: Vec::new(),
            notes: vec![
                "the document declares no security scheme: say how the provider authenticates"
                    .into(),
            ],
        };
    };
    let mut guess = AuthGuess {
        kind: AuthKind::Unknown,
        extra_headers: Vec::new(),
        confidence: 0.95,
        evidence: vec![scheme.pointer.clone()],
        notes: Vec::new(),
    };
    guess.kind = match &scheme.kind {
        SchemeKind::Bearer => AuthKind::Bearer,
        SchemeKind::Basic => AuthKind::Basic,
        SchemeKind::ApiKey { header, name } => {
            // Several API-key headers required together (a client id and a secret): the
            // secret-like one is the key, the others go with every request.
            let together = together(api, &scheme.name);
            let mut names: Vec<String> = together.clone();
            names.sort_by_key(|n| {
                !contains_any(&n.to_lowercase(), &["secret", "key", "auth", "token"])
            });
            let key = names.first().cloned().unwrap_or_else(|| name.clone());
            guess.extra_headers = together.into_iter().filter(|n| *n != key).collect();
            let key = if names.is_empty() { name.clone() } else { key };
            if !guess.extra_headers.is_empty() {
                guess.confidence = 0.8;
            }
            AuthKind::ApiKey {
                header: *header,
                name: key,
            }
        }
        SchemeKind::OAuth2 {
            token_url,
            client_credentials: true,
        } => AuthKind::OAuth2 {
            token_url: token_url.clone(),
        },
        SchemeKind::OAuth2 { .. } => {
            // Without a client-credentials flow, a server-side connector holds an access token.
            guess.confidence = 0.75;
            guess.notes.push("the OAuth2 scheme has no client-credentials flow: the connector sends an access token obtained beforehand".into());
            AuthKind::Bearer
        }
        SchemeKind::Other => AuthKind::Unknown,
    };
    if let AuthKind::ApiKey { header: true, name } = &guess.kind
        && squash(name) == "authorization"
        && contains_any(&scheme.text, &["bearer "])
    {
        guess.kind = AuthKind::Bearer;
    }
    guess
}

fn rank(kind: &SchemeKind) -> Option<u8> {
    match kind {
        SchemeKind::OAuth2 {
            client_credentials: true,
            ..
        } => Some(0),
        SchemeKind::Bearer => Some(1),
        SchemeKind::ApiKey { .. } => Some(2),
        SchemeKind::Basic => Some(3),
        SchemeKind::OAuth2 { .. } => Some(4),
        SchemeKind::Other => None,
    }
}

/// Scheme names the document's operations (or its top level) require.
fn used_schemes(api: &Api) -> Vec<String> {
    let mut used: Vec<String> = api
        .documents
        .iter()
        .filter_map(|d| d.root.get("security")?.as_array().cloned())
        .flatten()
        .filter_map(|r| r.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .flatten()
        .collect();
    for endpoint in &api.endpoints {
        used.extend(endpoint.security.iter().flatten().cloned());
    }
    used
}

/// The header names of API-key schemes required together with `name` in one requirement.
fn together(api: &Api, name: &str) -> Vec<String> {
    let requirement = api
        .documents
        .iter()
        .filter_map(|d| d.root.get("security")?.as_array().cloned())
        .flatten()
        .filter_map(|r| r.as_object().cloned())
        .find(|r| r.contains_key(name) && r.len() > 1);
    let Some(requirement) = requirement else {
        return Vec::new();
    };
    api.schemes
        .iter()
        .filter(|s| requirement.contains_key(&s.name))
        .filter_map(|s| match &s.kind {
            SchemeKind::ApiKey { header: true, name } if !squash(name).contains("version") => {
                Some(name.clone())
            }
            _ => None,
        })
        .collect()
}

/// A login operation: a POST whose path says it authenticates and whose answer holds a token,
/// with the token then required as a header parameter by most operations.
fn login(api: &Api) -> Option<AuthGuess> {
    let endpoint = api.endpoints.iter().find(|e| {
        e.method == "POST"
            && contains_any(
                &e.path.to_lowercase(),
                &["login", "authenticate", "/auth/token", "/session"],
            )
            && e.response.is_some_and(|r| {
                r.properties()
                    .iter()
                    .any(|(n, _)| contains_any(&squash(n), &["token", "accesstoken"]))
                    || r.property("data").is_some_and(|d| {
                        d.properties()
                            .iter()
                            .any(|(n, _)| squash(n).contains("token"))
                    })
            })
    })?;
    let mut counts: Vec<(String, usize)> = Vec::new();
    for e in &api.endpoints {
        for p in e
            .params
            .iter()
            .filter(|p| p.location == Location::Header && p.required)
        {
            if squash(&p.name).contains("token") || squash(&p.name).contains("auth") {
                match counts.iter_mut().find(|(n, _)| *n == p.name) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((p.name.clone(), 1)),
                }
            }
        }
    }
    counts.sort_by_key(|(n, c)| (std::cmp::Reverse(*c), n.clone()));
    let (header, count) = counts.first()?.clone();
    if count * 2 < api.endpoints.len() && api.schemes.iter().any(|s| rank(&s.kind).is_some()) {
        return None;
    }
    Some(AuthGuess {
        kind: AuthKind::Login {
            header: header.clone(),
            path: endpoint.path.clone(),
        },
        extra_headers: Vec::new(),
        confidence: 0.9,
        evidence: vec![
            endpoint.pointer.clone(),
            format!("the `{header}` header parameter of {count} operations"),
        ],
        notes: vec![format!(
            "log in with {} {} and send its token as `{header}`: the mapping language has no login auth yet (LOGIN)",
            endpoint.method, endpoint.path
        )],
    })
}
