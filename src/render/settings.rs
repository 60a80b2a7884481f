//! settings.rs and mod.rs of a generated crate: the provider settings the mapping declares
//! (read from the environment at start-up, credentials never printed), and the module list.

use proc_macro2::TokenStream;
use quote::quote;

use super::doc;
use crate::mapping::Setting;
use crate::names;
use crate::plan::{AuthPlan, Crate, Plan};

/// `pub mod` for every other file the plan puts in src/generated/.
pub fn generated_mod(plan: &Plan) -> TokenStream {
    let mut modules: Vec<&str> = plan
        .files
        .iter()
        .filter_map(|file| {
            file.path
                .strip_prefix("src/generated/")?
                .strip_suffix(".rs")
        })
        .filter(|module| *module != "mod")
        .collect();
    modules.sort_unstable();
    let modules = modules.into_iter().map(names::snake_ident);
    quote! {
        //! The protocol side of this connector, generated from the Generic connector spec and
        //! connector.yaml. `connector-gen generate` rewrites every file in this folder.
        #(#[rustfmt::skip] pub mod #modules;)*

        pub use api::Connector;
        pub use error::ConnectorError;
        pub use runtime::{Config, Context};
    }
}

pub fn settings(krate: &Crate) -> TokenStream {
    let fields = krate.settings.iter().map(|setting| {
        let ident = names::snake_ident(&setting.field);
        let source = match &setting.source {
            Setting::Env(var) => format!("{} Read from `{var}`.", setting.doc),
            Setting::Literal(value) => format!("{} Set in connector.yaml: `{value}`.", setting.doc),
        };
        let doc = doc(Some(&source));
        quote! { #doc pub #ident: String, }
    });
    let values = krate.settings.iter().map(|setting| {
        let ident = names::snake_ident(&setting.field);
        let value = match &setting.source {
            Setting::Env(var) => {
                let what = &setting.doc;
                quote!(super::runtime::required_env(env, #var, #what, problems))
            }
            Setting::Literal(value) => quote!(#value.to_owned()),
        };
        quote! { #ident: #value, }
    });
    let debug_fields = krate.settings.iter().map(|setting| {
        let (name, ident) = (&setting.field, names::snake_ident(&setting.field));
        if setting.secret {
            quote!(.field(#name, &"<redacted>"))
        } else {
            quote!(.field(#name, &self.#ident))
        }
    });
    let client = if krate.upstream {
        client_settings(krate)
    } else {
        TokenStream::new()
    };
    quote! {
        //! The provider settings declared in connector.yaml, read when the connector starts.

        /// How to reach the provider (`upstream` in connector.yaml).
        #[derive(Clone, PartialEq, Eq)]
        pub struct UpstreamSettings { #(#fields)* }

        impl UpstreamSettings {
            /// Reads every setting, recording each missing one in `problems`.
            pub(crate) fn from_lookup(env: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Self {
                Self { #(#values)* }
            }

            #client
        }

        /// Credentials are never printed.
        impl std::fmt::Debug for UpstreamSettings {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("UpstreamSettings") #(#debug_fields)* .finish()
            }
        }
    }
}

fn client_settings(krate: &Crate) -> TokenStream {
    let field = |name: &str| {
        let ident = names::snake_ident(name);
        quote!(self.#ident.clone())
    };
    let auth = match &krate.auth {
        None => quote!(Auth::None),
        Some(AuthPlan::Bearer { token }) => {
            let token = field(token);
            quote!(Auth::Bearer(#token))
        }
        Some(AuthPlan::ApiKey {
            location,
            name,
            value,
        }) => {
            let value = field(value);
            match location {
                crate::mapping::KeyLocation::Header => {
                    quote!(Auth::Header { name: #name.to_owned(), value: #value })
                }
                crate::mapping::KeyLocation::Query => {
                    quote!(Auth::Query { name: #name.to_owned(), value: #value })
                }
            }
        }
        Some(AuthPlan::Basic { username, password }) => {
            let (username, password) = (field(username), field(password));
            quote!(Auth::Basic { username: #username, password: #password })
        }
        Some(AuthPlan::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        }) => {
            let (token_url, client_id, client_secret) =
                (field(token_url), field(client_id), field(client_secret));
            let scope = match scope {
                Some(scope) => quote!(Some(#scope.to_owned())),
                None => quote!(None),
            };
            quote!(Auth::OAuth2 { token_url: #token_url, client_id: #client_id, client_secret: #client_secret, scope: #scope })
        }
    };
    let headers = krate.headers.iter().map(|(name, settings_field)| {
        let value = field(settings_field);
        quote!((#name.to_owned(), #value))
    });
    let timeout = proc_macro2::Literal::u64_unsuffixed(krate.timeout_ms);
    let attempts = proc_macro2::Literal::u32_unsuffixed(krate.retry.attempts);
    let deadline = proc_macro2::Literal::u64_unsuffixed(krate.retry.deadline_ms);
    quote! {
        /// The provider client's settings: these values, and connector.yaml's auth, timeout and retries.
        pub(crate) fn client_settings(&self) -> super::upstream::ClientSettings {
            use super::upstream::Auth;
            super::upstream::ClientSettings {
                base_url: self.base_url.clone(),
                auth: #auth,
                headers: vec![#(#headers),*],
                timeout: std::time::Duration::from_millis(#timeout),
                attempts: #attempts,
                deadline: std::time::Duration::from_millis(#deadline),
            }
        }
    }
}
