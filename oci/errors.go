package oci

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Sentinels for errors.Is; an *Error's Err wraps at most one of them.
var (
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrSizeMismatch   = errors.New("size mismatch")
	ErrTooLarge       = errors.New("too large")
	ErrNotFound       = errors.New("not found")
	ErrUnauthorized   = errors.New("unauthorized")
	ErrPlatform       = errors.New("no manifest for platform")
)

// Error is what Client's methods return on failure, naming what failed.
type Error struct {
	Op         string // "resolve" or "fetch blob"
	Registry   string
	Repository string
	Tag        string
	Digest     string
	Status     int // HTTP status of the failing response, 0 if none
	Err        error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("oci: ")
	b.WriteString(e.Op)
	b.WriteString(" ")
	b.WriteString(e.Registry)
	b.WriteString("/")
	b.WriteString(e.Repository)
	if e.Tag != "" {
		b.WriteString(":")
		b.WriteString(e.Tag)
	}
	if e.Digest != "" {
		b.WriteString("@")
		b.WriteString(e.Digest)
	}
	if e.Status != 0 {
		b.WriteString(": HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// transient marks a failure worth retrying (network trouble, 5xx, 429),
// with the server's Retry-After if it gave one.
type transient struct {
	err   error
	after time.Duration
}

func (t transient) Error() string { return t.err.Error() }
func (t transient) Unwrap() error { return t.err }

// httpStatus records the status of the response behind an error, for
// Error.Status.
type httpStatus struct {
	code int
	err  error
}

func (h httpStatus) Error() string { return h.err.Error() }
func (h httpStatus) Unwrap() error { return h.err }

func isTransient(err error) bool {
	var t transient
	return errors.As(err, &t)
}

// Sentinels for boot artifacts.
var (
	ErrNoKernel   = errors.New("no kernel")
	ErrTwoKernels = errors.New("more than one candidate kernel")
)
