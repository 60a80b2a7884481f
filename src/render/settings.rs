//! settings.rs and mod.rs of a generated crate: the provider settings the mapping declares
//! (read from the environment at start-up), and the module list.

use proc_macro2::TokenStream;
use quote::quote;

use super::doc;
use crate::ir::Protocol;
use crate::mapping::{KeyLocation, Setting};
use crate::names;
use crate::plan::{AuthPlan, Crate, FileKind, Plan};

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
/// connector.yaml, with the client's timeout and retries.
pub fn settings(krate: &Crate) -> TokenStream {
    let mut doc_lines = vec![
        "How to reach the provider (`upstream` in connector.yaml), read at start-up:".to_owned(),
    ];
    doc_lines.extend(krate.settings.iter().map(|setting| match &setting.source {
        Setting::Env(var) => format!("- `{var}`: {}", setting.doc),
        Setting::Literal(value) => format!("- {} Set in connector.yaml: `{value}`.", setting.doc),
    }));
    let doc = doc(Some(&doc_lines.join("\n")));
    let reads_env = krate
        .settings
        .iter()
        .any(|setting| matches!(setting.source, Setting::Env(_)));
    let values = krate.settings.iter().map(|setting| {
        let ident = names::snake_ident(&setting.field);
        let value = match &setting.source {
            Setting::Env(var) => {
                let what = &setting.doc;
                quote!(required_env(env, #var, #what, problems))
            }
            Setting::Literal(value) => quote!(#value.to_owned()),
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
    let (imports, env) = if reads_env {
        (
            quote!(
                use super::runtime::config::{Auth, Env, UpstreamSettings, required_env};
            ),
            quote!(env: Env, problems: &mut Vec<String>),
        )
    } else {
        (
            quote!(
                use super::runtime::config::{Auth, Env, UpstreamSettings};
            ),
            quote!(_env: Env, _problems: &mut Vec<String>),
        )
    };
    quote! {
        //! The provider settings declared in connector.yaml, read when the connector starts.
        use std::time::Duration;

        #imports

        #doc
        pub fn upstream(#env) -> UpstreamSettings {
            #(#values)*
            UpstreamSettings {
                base_url,
                auth: #auth,
                headers: vec![#(#headers),*],
                timeout: Duration::from_millis(#timeout),
                attempts: #attempts,
                deadline: Duration::from_millis(#deadline),
            }
        }
    }
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
