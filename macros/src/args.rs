//! The arguments of `#[profiled(...)]` and `profile!(...)`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitBool, LitStr, Token};

mod kw {
    syn::custom_keyword!(agent);
    syn::custom_keyword!(name);
    syn::custom_keyword!(labels);
    syn::custom_keyword!(span);
    syn::custom_keyword!(errors);
}

const ACCEPTED: &str =
    "expected one of: `agent = \"..\"`, `name = \"..\"`, `labels(key = value, ..)`, `span = false`, `errors = false`";

/// Field names the generated span declares itself.
const RESERVED_LABELS: &[&str] = &["agent", "invocation_id", "outcome", "resource"];

pub(crate) struct Label {
    pub(crate) key: Ident,
    pub(crate) value: Expr,
}

#[derive(Default)]
pub(crate) struct Args {
    pub(crate) agent: Option<LitStr>,
    pub(crate) name: Option<LitStr>,
    pub(crate) labels: Option<Vec<Label>>,
    pub(crate) span: Option<LitBool>,
    pub(crate) errors: Option<LitBool>,
}

impl Args {
    /// Whether the invocation gets a tracing span (default yes).
    pub(crate) fn wants_span(&self) -> bool {
        self.span.as_ref().is_none_or(|b| b.value)
    }

    /// Whether an `Err` return counts as an error outcome (default yes).
    pub(crate) fn counts_errors(&self) -> bool {
        self.errors.as_ref().is_none_or(|b| b.value)
    }

    /// True when the next tokens start one of our arguments.
    fn at_argument(input: ParseStream) -> bool {
        (input.peek(kw::agent)
            || input.peek(kw::name)
            || input.peek(kw::span)
            || input.peek(kw::errors))
            && input.peek2(Token![=])
            || input.peek(kw::labels) && input.peek2(syn::token::Paren)
    }

    /// Parses one argument into `self`, rejecting a repeated key at its token.
    fn parse_one(&mut self, input: ParseStream) -> syn::Result<()> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::agent) {
            let key: kw::agent = input.parse()?;
            input.parse::<Token![=]>()?;
            let value = string_literal(input, "agent", "agent = \"planner\"")?;
            set_once(&mut self.agent, value, key.span, "agent")
        } else if lookahead.peek(kw::name) {
            let key: kw::name = input.parse()?;
            input.parse::<Token![=]>()?;
            let value = string_literal(input, "name", "name = \"planner::plan\"")?;
            set_once(&mut self.name, value, key.span, "name")
        } else if lookahead.peek(kw::span) {
            let key: kw::span = input.parse()?;
            input.parse::<Token![=]>()?;
            let value: LitBool = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "`span` takes `true` or `false`, e.g. `span = false`",
                )
            })?;
            set_once(&mut self.span, value, key.span, "span")
        } else if lookahead.peek(kw::errors) {
            let key: kw::errors = input.parse()?;
            input.parse::<Token![=]>()?;
            let value: LitBool = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "`errors` takes `true` or `false`, e.g. `errors = false`",
                )
            })?;
            set_once(&mut self.errors, value, key.span, "errors")
        } else if lookahead.peek(kw::labels) {
            let key: kw::labels = input.parse()?;
            let content;
            syn::parenthesized!(content in input);
            let mut labels: Vec<Label> = Vec::new();
            while !content.is_empty() {
                let label_key: Ident = content.parse()?;
                content.parse::<Token![=]>()?;
                let value: Expr = content.parse()?;
                let text = label_key.to_string();
                if RESERVED_LABELS.contains(&text.as_str()) {
                    return Err(syn::Error::new(
                        label_key.span(),
                        format!("label key `{text}` is reserved for the span's own field; choose another name"),
                    ));
                }
                if labels.iter().any(|l| l.key == label_key) {
                    return Err(syn::Error::new(
                        label_key.span(),
                        format!("duplicate label key `{text}`"),
                    ));
                }
                labels.push(Label {
                    key: label_key,
                    value,
                });
                if content.is_empty() {
                    break;
                }
                content.parse::<Token![,]>()?;
            }
            set_once(&mut self.labels, labels, key.span, "labels")
        } else if input.peek(Ident) {
            let unknown: Ident = input.parse()?;
            Err(syn::Error::new(
                unknown.span(),
                format!("unknown argument `{unknown}`; {ACCEPTED}"),
            ))
        } else {
            Err(lookahead.error())
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: Span, name: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(key, format!("duplicate argument `{name}`")));
    }
    *slot = Some(value);
    Ok(())
}

fn string_literal(input: ParseStream, key: &str, example: &str) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        return input.parse();
    }
    let expr: Expr = input.parse()?;
    Err(syn::Error::new_spanned(
        expr,
        format!("`{key}` must be a string literal, e.g. `{example}`"),
    ))
}

impl Parse for Args {
    /// `#[profiled(...)]`: arguments only.
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            args.parse_one(input)?;
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// `profile!(args.., future)`.
pub(crate) struct BlockArgs {
    pub(crate) args: Args,
    pub(crate) future: Expr,
}

impl Parse for BlockArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        // `ident = ..` is an argument (perhaps a misspelt one): an assignment
        // is never a future.
        while Args::at_argument(input)
            || input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==])
        {
            args.parse_one(input)?;
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        if input.is_empty() {
            return Err(input.error("expected a future after the arguments, e.g. `profile!(agent = \"x\", async { .. })`"));
        }
        let future: Expr = input.parse()?;
        input.parse::<Option<Token![,]>>()?;
        if !input.is_empty() {
            return Err(input.error(
                "unexpected tokens after the future: arguments come first, the future last",
            ));
        }
        Ok(BlockArgs { args, future })
    }
}
