//! The `#[profiled]` attribute and `profile!` macro of
//! [agentprof](https://docs.rs/agentprof). Use them through the facade crate.
#![deny(missing_docs)]

mod args;
mod expand;
mod validate;

use proc_macro::TokenStream;

/// See `agentprof::profiled`.
#[proc_macro_attribute]
pub fn profiled(args: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    let expanded = syn::parse::<args::Args>(args).and_then(|args| {
        let item = validate::item(original.clone())?;
        validate::signature(&item.sig)?;
        Ok(if cfg!(feature = "enabled") {
            expand::function(&args, item)
        } else {
            original.clone()
        })
    });
    match expanded {
        Ok(tokens) => tokens.into(),
        // The item as written, beside the error, spares the user follow-on
        // errors about a function that seems to be missing.
        Err(error) => {
            let error = error.to_compile_error();
            quote::quote!(#error #original).into()
        }
    }
}

/// See `agentprof::profile`.
#[proc_macro]
pub fn profile(input: TokenStream) -> TokenStream {
    match syn::parse::<args::BlockArgs>(input) {
        Ok(parsed) if cfg!(feature = "enabled") => expand::block(parsed).into(),
        Ok(parsed) => {
            let future = parsed.future;
            quote::quote!(#future).into()
        }
        Err(error) => error.to_compile_error().into(),
    }
}
