// Package actors is the supervisor and actor lifecycle of the loader: start in
// dependency order, failure policy, ordered teardown with a deadline, batch
// channels with pooled buffers, per-actor counters.
//
// Nothing is built here yet; a later issue fills it in.
package actors
