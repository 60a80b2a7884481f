//! settings.rs and mod.rs of a generated crate: the provider settings the mapping declares
//! (read from the environment at start-up), and the module list.

use proc_macro2::TokenStream;
use quote::quote;

use super::doc;
use crate::ir::Protocol;
use crate::mapping::{BodyEncoding, KeyLocation, Setting, SettingPart};
use crate::names;
use crate::plan::{AuthPlan, Crate, FileKind, Plan, SettingKind};

/// `pub mod` for every generated module, and the names handlers use most.
pub fn generated_mod(protocol: &Protocol, plan: &Plan) -> TokenStream {
    let mut modules: Vec<&str> = plan
        .files
        .iter()
        .filter(|file| !matches!(file.kind, FileKind::Runtime(_)))
        .filter_map(|file| {
            file.path
                .strip_prefix("src/generated/")?
                .strip_suffix(".rs")
        })
        .filter(|module| *module != "mod")
        .chain(["runtime"])
        .collect();
    modules.sort_unstable();
    let modules = modules.into_iter().map(names::snake_ident);
    let mut exports = vec![
        quote!(Config),
        quote!(ConnectorError),
        quote!(Context),
        quote!(convert),
    ];
    if protocol.initiations().next().is_some() {
        exports.push(quote!(initiation));
    }
    if plan.krate.upstream {
        exports.push(quote!(upstream));
    }
    quote! {
        //! The protocol side of this connector, generated from the Generic connector spec and
        //! connector.yaml, and the connector runtime it runs on. `connector-gen generate`
        //! rewrites every file in this folder.
        #(pub mod #modules;)*

        pub use api::Connector;
        pub use runtime::{#(#exports),*};
    }
}

/// `upstream()`: the provider settings, each read from the environment or set in
/// connector.yaml (or both: text with `${env:NAME}` references), with the client's timeout
/// and retries. Every variable is read once; URLs and header values are checked at start-up.
pub fn settings(krate: &Crate) -> TokenStream {
    let mut doc_lines = vec![
        "How to reach the provider (`upstream` in connector.yaml), read at start-up:".to_owned(),
    ];
    doc_lines.extend(
        krate
            .variables
            .iter()
            .map(|variable| format!("- `{}`: {}", variable.name, variable.doc)),
    );
    doc_lines.extend(
        krate
            .settings
            .iter()
            .filter_map(|setting| match &setting.source {
                Setting::Literal(value) => Some(format!(
                    "- {} Set in connector.yaml: `{value}`.",
                    setting.doc
                )),
                Setting::Template(parts) => {
                    let written: String = parts
                        .iter()
                        .map(|part| match part {
                            SettingPart::Text(text) => text.clone(),
                            SettingPart::Env(name) => format!("${{env:{name}}}"),
                        })
                        .collect();
                    Some(format!(
                        "- {} Set in connector.yaml: `{written}`.",
                        setting.doc
                    ))
                }
                Setting::Env(_) => None,
            }),
    );
    let doc = doc(Some(&doc_lines.join("\n")));
    let wanted = krate.variables.iter().map(|variable| {
        let (name, what) = (&variable.name, &variable.doc);
        quote!((#name, #what))
    });
    let values = krate.settings.iter().map(|setting| {
        let ident = names::snake_ident(&setting.field);
        let pieces = setting.source.parts().into_iter().map(|part| match part {
            SettingPart::Text(text) => quote!(Piece::Text(#text)),
            SettingPart::Env(name) => quote!(Piece::Var(#name)),
        });
        let pieces = quote!(&[#(#pieces),*]);
        let value = match &setting.kind {
            SettingKind::Url => {
                let what = format!("`upstream.{}`", setting.field);
                quote!(vars.url(#what, #pieces, problems))
            }
            SettingKind::TokenUrl => quote!(vars.token_url(&base_url, #pieces, problems)),
            SettingKind::LoginUrl => {
                quote!(vars.endpoint("`upstream.auth.login.url`", &base_url, #pieces, problems))
            }
            SettingKind::Header(name) => quote!(vars.header(#name, #pieces, problems)),
            SettingKind::Text => quote!(vars.text(#pieces)),
        };
        quote! { let #ident = #value; }
    });
    let auth = auth(krate.auth.as_ref());
    let headers = krate.headers.iter().map(|(name, field)| {
        let value = names::snake_ident(field);
        quote!((#name.to_owned(), #value))
    });
    let timeout = proc_macro2::Literal::u64_unsuffixed(krate.timeout_ms);
    let attempts = proc_macro2::Literal::u32_unsuffixed(krate.retry.attempts);
    let deadline = proc_macro2::Literal::u64_unsuffixed(krate.retry.deadline_ms);
    let rate_limit = rate_limit(krate.rate_limit);
    quote! {
        //! The provider settings declared in connector.yaml, read when the connector starts.
        use std::time::Duration;

        use super::runtime::config::{Auth, Env, Piece, UpstreamSettings, Variables};

        #doc
        pub fn upstream(env: Env, problems: &mut Vec<String>) -> UpstreamSettings {
            let vars = Variables::read(env, &[#(#wanted),*], problems);
            #(#values)*
            UpstreamSettings {
                base_url,
                auth: #auth,
                headers: vec![#(#headers),*],
                timeout: Duration::from_millis(#timeout),
                attempts: #attempts,
                deadline: Duration::from_millis(#deadline),
                rate_limit: #rate_limit,
            }
        }
    }
}

/// `upstream.rate_limit`, as the runtime's `RateLimit`.
fn rate_limit(limit: Option<crate::mapping::RateLimit>) -> TokenStream {
    let Some(limit) = limit else {
        return quote!(None);
    };
    let requests = proc_macro2::Literal::u32_unsuffixed(limit.requests);
    let per = proc_macro2::Literal::u64_unsuffixed(limit.per_ms);
    let burst = proc_macro2::Literal::u32_unsuffixed(limit.burst);
    quote!(Some(super::runtime::config::RateLimit {
        requests: #requests,
        per: Duration::from_millis(#per),
        burst: #burst,
    }))
}

fn auth(auth: Option<&AuthPlan>) -> TokenStream {
    match auth {
        None => quote!(Auth::None),
        Some(AuthPlan::Bearer { token }) => {
            let token = names::snake_ident(token);
            quote!(Auth::Bearer(#token))
        }
        Some(AuthPlan::ApiKey {
            location,
            name,
            value,
        }) => {
            let value = init("value", value);
            match location {
                KeyLocation::Header => quote!(Auth::Header { name: #name.to_owned(), #value }),
                KeyLocation::Query => quote!(Auth::Query { name: #name.to_owned(), #value }),
            }
        }
        Some(AuthPlan::Basic { username, password }) => {
            let (username, password) = (init("username", username), init("password", password));
            quote!(Auth::Basic { #username, #password })
        }
        Some(AuthPlan::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        }) => {
            let token_url = init("token_url", token_url);
            let client_id = init("client_id", client_id);
            let client_secret = init("client_secret", client_secret);
            let scope = match scope {
                Some(scope) => quote!(Some(#scope.to_owned())),
                None => quote!(None),
            };
            quote!(Auth::OAuth2 { #token_url, #client_id, #client_secret, scope: #scope })
        }
        Some(AuthPlan::Login {
            method,
            url,
            body,
            encoding,
            basic,
            token,
            expires_in,
            expires_after_ms,
            header,
            prefix,
        }) => {
            let url = names::snake_ident(url);
            let body = body.iter().map(|(name, field)| {
                let field = names::snake_ident(field);
                quote!((#name.to_owned(), #field))
            });
            let encoding = match encoding {
                BodyEncoding::Json => quote!(Json),
                BodyEncoding::Form => quote!(Form),
            };
            let basic = match basic {
                Some((username, password)) => {
                    let (username, password) =
                        (names::snake_ident(username), names::snake_ident(password));
                    quote!(Some((#username, #password)))
                }
                None => quote!(None),
            };
            let expires_in = match expires_in {
                Some(path) => quote!(Some(#path.to_owned())),
                None => quote!(None),
            };
            let expires_after = match expires_after_ms {
                Some(ms) => {
                    let ms = proc_macro2::Literal::u64_unsuffixed(*ms);
                    quote!(Some(Duration::from_millis(#ms)))
                }
                None => quote!(None),
            };
            let prefix = if prefix.is_empty() {
                quote!(String::new())
            } else {
                quote!(#prefix.to_owned())
            };
            quote!(Auth::Login(Box::new(super::runtime::config::Login {
                method: #method.to_owned(),
                url: #url,
                body: vec![#(#body),*],
                encoding: super::runtime::config::BodyEncoding::#encoding,
                basic: #basic,
                token: #token.to_owned(),
                expires_in: #expires_in,
                expires_after: #expires_after,
                header: #header.to_owned(),
                prefix: #prefix,
            })))
        }
    }
}

/// `field: setting`, or the shorthand `field` when the setting has the field's name.
fn init(field: &str, setting: &str) -> TokenStream {
    let (field_ident, setting_ident) = (names::snake_ident(field), names::snake_ident(setting));
    if field_ident == setting_ident {
        quote!(#field_ident)
    } else {
        quote!(#field_ident: #setting_ident)
    }
}
