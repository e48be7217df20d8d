// Package actors is the supervisor and actor lifecycle of the loader.
//
// An actor is a goroutine that owns its state and talks through channels
// (Actor). The Supervisor starts actors in dependency order (After), waits for
// those that must be ready first (Readier), restarts or fails them by policy
// (Restart, Optional), and on handoff stops them in reverse order within one
// deadline, reporting any that did not stop, then runs the teardown functions
// (the NIC reset) regardless. Channels between actors carry Batches of pooled
// buffers, and every actor keeps Counters that observe samples.
package actors
