// Package plan is the boot plan shared by the loader and the host CLI:
// targets, policies, timeouts and fallbacks.
//
// Nothing is built here yet; a later issue fills it in.
package plan
