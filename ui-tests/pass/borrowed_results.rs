//! Real-world shapes from `std` trait impls and builders: references
//! borrowed through `&mut self` or `&mut` arguments, returned inside
//! `Result`, early `return` and `?`, `impl Trait` with borrowed data.
#![deny(warnings)]

use std::collections::HashMap;
use std::io::{self, BufRead, Read};
use std::ops::{Deref, Index};

use agentprof::profiled;

struct Buffer {
    data: Vec<u8>,
    pos: usize,
}

impl Buffer {
    #[profiled]
    fn view(&mut self) -> Result<&[u8], ()> {
        Ok(&self.data)
    }

    #[profiled]
    fn view_read_only(&self) -> Result<&[u8], ()> {
        Ok(&self.data[self.pos..])
    }

    #[profiled]
    fn first_mut(&mut self) -> Result<&mut u8, String> {
        if self.data.is_empty() {
            return Err("empty".into());
        }
        self.data.first_mut().ok_or_else(|| "none".to_owned())
    }

    #[profiled]
    fn parse_len(&mut self, text: &str) -> Result<&mut Vec<u8>, std::num::ParseIntError> {
        let n: usize = text.parse()?;
        self.data.truncate(n);
        Ok(&mut self.data)
    }

    /// A builder returning `&mut Self`.
    #[profiled]
    fn push(&mut self, byte: u8) -> &mut Self {
        self.data.push(byte);
        self
    }
}

impl Read for Buffer {
    #[profiled]
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Buffer {
    #[profiled]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(&self.data[self.pos..])
    }

    #[profiled]
    fn consume(&mut self, amt: usize) {
        self.pos += amt
    }
}

struct Words<'a> {
    text: &'a str,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    #[profiled]
    fn next(&mut self) -> Option<&'a str> {
        let text = self.text.trim_start();
        if text.is_empty() {
            return None;
        }
        let end = text.find(' ').unwrap_or(text.len());
        let (word, rest) = text.split_at(end);
        self.text = rest;
        Some(word)
    }
}

struct Table(HashMap<String, u32>);

impl Index<&str> for Table {
    type Output = u32;

    #[profiled]
    fn index(&self, key: &str) -> &u32 {
        &self.0[key]
    }
}

impl Deref for Table {
    type Target = HashMap<String, u32>;

    #[profiled]
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AsRef<HashMap<String, u32>> for Table {
    #[profiled]
    fn as_ref(&self) -> &HashMap<String, u32> {
        &self.0
    }
}

#[profiled]
fn longest<'a>(words: impl Iterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    words.filter(|w| w.len() > 3)
}

#[profiled]
fn lookup<'m>(map: &'m mut HashMap<String, u32>, key: &str) -> Result<&'m mut u32, String> {
    match map.get_mut(key) {
        Some(value) => Ok(value),
        None => Err(format!("no {key}")),
    }
}

#[profiled]
fn one_line(x: u32) -> u32 {
    x + 1
}

#[profiled]
fn never_returns() -> ! {
    panic!("diverges")
}

#[profiled]
fn with_inner_attribute() -> u32 {
    #![allow(clippy::let_and_return)]
    let x = 1;
    x
}

#[profiled]
fn nested_returns(flag: bool) -> Result<u32, String> {
    let closure = |x: u32| -> Result<u32, String> {
        if x == 0 {
            return Err("zero".into());
        }
        Ok(x)
    };
    fn helper() -> Result<u32, String> {
        Ok(2)
    }
    if flag {
        return closure(1);
    }
    Ok(helper()? + closure(3)?)
}

#[track_caller]
#[profiled]
fn caller_line() -> Result<u32, ()> {
    Ok(std::panic::Location::caller().line())
}

fn main() {
    let mut buffer = Buffer {
        data: vec![1, 2, 3],
        pos: 0,
    };
    buffer.push(4).push(5);
    let _ = (buffer.view().map(<[u8]>::len), buffer.view_read_only().is_ok());
    let _ = buffer.first_mut().map(|b| *b += 1);
    let _ = buffer.parse_len("3").map(|v| v.len());
    let mut out = [0u8; 2];
    let _ = buffer.read(&mut out);
    let words: Vec<&str> = Words { text: "a bb cccc" }.collect();
    let table = Table(HashMap::from([("a".to_owned(), 1)]));
    let _ = (table["a"], table.len(), table.as_ref().len());
    let _ = longest(words.into_iter()).count();
    let mut map = HashMap::new();
    let _ = lookup(&mut map, "k");
    let _ = (one_line(1), with_inner_attribute(), nested_returns(true), caller_line());
    if one_line(0) == 0 {
        never_returns();
    }
}
