//! The connector.yaml line and provider path of each mapped list field, in the generated
//! `App`: a list stuck on a record the mapping cannot convert names the line to fix.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use crate::mapping::Step;
use crate::plan::FieldLine;

/// `App::field_sources` and the table it returns; nothing when no list is mapped.
pub fn render(lines: &[FieldLine]) -> (TokenStream, TokenStream) {
    if lines.is_empty() {
        return (TokenStream::new(), TokenStream::new());
    }
    let entries = lines.iter().map(|line| {
        let operation = &line.operation;
        let field = &line.field;
        let number = Literal::u32_unsuffixed(line.line);
        let path = match &line.path {
            Some(steps) => {
                let steps = steps.iter().filter_map(|step| match step {
                    Step::Key(key) => Some(quote!(super::runtime::convert::Step::Key(#key))),
                    Step::Index(index) => {
                        let index = Literal::usize_unsuffixed(*index);
                        Some(quote!(super::runtime::convert::Step::Index(#index)))
                    }
                    Step::Each => None,
                });
                quote!(Some(&[#(#steps),*]))
            }
            None => quote!(None),
        };
        quote! {
            super::runtime::health::FieldSource { operation: #operation, field: #field, line: #number, path: #path }
        }
    });
    (
        quote! {
            fn field_sources() -> &'static [super::runtime::health::FieldSource] {
                FIELD_SOURCES
            }
        },
        quote! {
            /// Where each mapped list field is in connector.yaml, and its value in the
            /// provider's record.
            static FIELD_SOURCES: &[super::runtime::health::FieldSource] = &[#(#entries),*];
        },
    )
}
