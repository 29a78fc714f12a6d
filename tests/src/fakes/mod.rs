//! Local stand-ins for third-party SaaS APIs, speaking their real wire formats and signing
//! schemes, on 127.0.0.1 ports of their own. Started by the tests; each stops when dropped.

pub mod faults;
pub mod hubspot;
pub mod plaid;
pub mod plaid_sync;
pub mod stripe;
