//! Integration tests of hapi-agent against real sockets. (Driver tests that need
//! the `fake-claude` binary live in hapi-testkit, where Cargo builds it first.)
mod link;
