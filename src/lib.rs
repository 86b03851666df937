//! lipost: publishes scheduled LinkedIn posts, exactly once.
//!
//! Data flows one way: folder → [`draft`] → [`store`] → [`scheduler`] → [`publisher`] →
//! [`linkedin`] → [`store`]. See ARCHITECTURE.md for the map and the invariants.

pub mod auth;
pub mod cli;
pub mod comments;
pub mod config;
pub mod content;
pub mod daemon;
pub mod draft;
pub mod linkedin;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod post;
pub mod publisher;
pub mod sandbox;
pub mod scheduler;
pub mod secret;
pub mod service;
pub mod slots;
pub mod store;
pub mod uploader;
pub mod wallclock;
pub mod watcher;
