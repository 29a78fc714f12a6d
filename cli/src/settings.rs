//! The local stack's layout and ports live in `apex-common` so that the end-to-end tests find
//! the stack from the same settings `apex up` starts it with.

pub use apex_common::stack::StackSettings;
