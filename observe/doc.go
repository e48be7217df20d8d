// Package observe is the loader's console tee, per-actor throughput and boot
// timeline.
//
// Nothing is built here yet; a later issue fills it in.
package observe
