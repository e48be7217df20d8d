package oci

import (
	"context"
	_ "crypto/sha256" // go-digest needs the hashes registered
	_ "crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// blobBufSize is the copy buffer; large enough that per-read costs
	// vanish, small enough for a loader's heap.
	blobBufSize = 256 << 10
	// maxBlobRequests bounds requests for one blob even while each makes
	// progress, so a server dripping a few bytes per connection cannot hold
	// us forever.
	maxBlobRequests = 64
)

// FetchBlob streams the blob desc names from ref's repository (ref's tag
// and digest do not matter) into dst, hashing as it goes. It returns nil
// only when dst holds, at offsets 0 to desc.Size-1, exactly the bytes whose
// digest is desc.Digest; after an error dst may hold anything and must be
// discarded.
//
// desc.Size is checked against WithMaxBlobSize, and the server's announced
// length against desc.Size, before anything is written, so dst can be
// exactly desc.Size bytes. A dropped connection or short body is resumed
// with a Range request at the next offset; a server that answers a range
// with the whole blob is read again from offset 0. Network errors, 5xx and
// 429 are retried with backoff. Redirects (to blob storage) are followed
// without the registry's credentials.
func (c *Client) FetchBlob(ctx context.Context, ref Reference, desc ocispec.Descriptor, dst io.WriterAt) error {
	repo := Reference{Registry: ref.Registry, Repository: ref.Repository}
	fail := func(err error) error { return wrap(err, "fetch blob", repo, desc.Digest.String()) }
	if err := repo.check(false); err != nil {
		return fail(err)
	}
	if err := desc.Digest.Validate(); err != nil {
		return fail(fmt.Errorf("descriptor digest %q: %w", desc.Digest, err))
	}
	if desc.Size < 0 {
		return fail(fmt.Errorf("%w: descriptor size %d", ErrSizeMismatch, desc.Size))
	}
	if c.maxBlob > 0 && desc.Size > c.maxBlob {
		return fail(fmt.Errorf("%w: blob is %d bytes, limit %d", ErrTooLarge, desc.Size, c.maxBlob))
	}
	f := &blobFetch{
		c:    c,
		ref:  ref,
		desc: desc,
		dst:  dst,
		h:    desc.Digest.Algorithm().Hash(),
		buf:  make([]byte, min(blobBufSize, max(desc.Size, 1))),
	}
	var high int64 // furthest offset reached by any attempt
	failures := 0
	for n := 1; ; n++ {
		err := f.once(ctx)
		if err == nil {
			break
		}
		if !isTransient(err) || n >= maxBlobRequests+c.retries {
			return fail(err)
		}
		if f.off > high {
			// New ground: resume at once, with a fresh retry budget.
			high, failures = f.off, 0
			continue
		}
		failures++
		if failures > c.retries {
			return fail(err)
		}
		if perr := c.pause(ctx, failures-1, err); perr != nil {
			return fail(perr)
		}
	}
	if got := digest.NewDigest(desc.Digest.Algorithm(), f.h); got != desc.Digest {
		return fail(fmt.Errorf("%w: expected %s, got %s over %d bytes", ErrDigestMismatch, desc.Digest, got, desc.Size))
	}
	return nil
}

// blobFetch is one FetchBlob's state across its requests.
type blobFetch struct {
	c       *Client
	ref     Reference
	desc    ocispec.Descriptor
	dst     io.WriterAt
	h       hash.Hash // covers dst[0:off]
	buf     []byte
	off     int64
	noRange bool // the server mishandled a Range: only whole reads from now on
}

// once makes one request and copies what it yields into dst from f.off on.
// Errors worth another request are transient.
func (f *blobFetch) once(ctx context.Context) error {
	size := f.desc.Size
	hdr := http.Header{}
	ranged := f.off > 0 && !f.noRange
	if ranged {
		// A closed range: some registries reject the open form "N-".
		hdr.Set("Range", "bytes="+strconv.FormatInt(f.off, 10)+"-"+strconv.FormatInt(size-1, 10))
	} else {
		f.restart()
	}
	resp, err := f.c.get(ctx, f.ref, "/v2/"+f.ref.Repository+"/blobs/"+f.desc.Digest.String(), hdr)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		// Whole blob, also when we asked for a range: start over.
		f.restart()
		if resp.ContentLength >= 0 && resp.ContentLength != size {
			resp.Body.Close()
			return fmt.Errorf("%w: server announces %d bytes, descriptor says %d", ErrSizeMismatch, resp.ContentLength, size)
		}
	case resp.StatusCode == http.StatusPartialContent && ranged:
		cr := resp.Header.Get("Content-Range")
		start, total, ok := parseContentRange(cr)
		if total >= 0 && total != size {
			resp.Body.Close()
			return fmt.Errorf("%w: server says the blob is %d bytes (Content-Range %q), descriptor says %d", ErrSizeMismatch, total, cr, size)
		}
		if !ok || start != f.off || resp.ContentLength > size-f.off {
			discard(resp)
			f.noRange = true
			return transient{err: fmt.Errorf("asked for bytes %d-%d, got Content-Range %q, Content-Length %d", f.off, size-1, cr, resp.ContentLength)}
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && ranged:
		discard(resp)
		f.noRange = true
		return transient{err: fmt.Errorf("server refused range from byte %d", f.off)}
	default:
		return statusError(resp)
	}
	defer resp.Body.Close()

	for f.off < size {
		n, rerr := resp.Body.Read(f.buf[:min(int64(len(f.buf)), size-f.off)])
		if n > 0 {
			w, werr := f.dst.WriteAt(f.buf[:n], f.off)
			if werr == nil && w != n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return fmt.Errorf("writing %d bytes at offset %d: %w", n, f.off, werr)
			}
			f.h.Write(f.buf[:n])
			f.off += int64(n)
		}
		if f.off == size {
			break // whatever came with the last bytes, the digest decides
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			return transient{err: fmt.Errorf("%w: body ended after %d of %d bytes", ErrSizeMismatch, f.off, size)}
		default:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return transient{err: fmt.Errorf("reading body at byte %d of %d: %w", f.off, size, rerr)}
		}
	}
	// All desc.Size bytes are in: anything more means the blob is not the
	// one described. A connection error here is harmless; the digest
	// decides about the bytes we have.
	var one [1]byte
	if n, _ := io.ReadFull(resp.Body, one[:]); n > 0 {
		return fmt.Errorf("%w: server sent more than the %d bytes expected", ErrSizeMismatch, size)
	}
	return nil
}

func (f *blobFetch) restart() {
	if f.off != 0 {
		f.off = 0
		f.h.Reset()
	}
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*", then
// total is -1).
func parseContentRange(s string) (start, total int64, ok bool) {
	total = -1
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, total, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, total, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, total, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, total, false
	}
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t <= end {
			return 0, -1, false
		}
		total = t
	}
	return start, total, true
}

// Buffer is a fixed-size io.WriterAt over memory the caller allocated, for
// example desc.Size bytes of firmware pages. Writes outside it fail.
type Buffer []byte

// WriteAt copies p to b[off:], failing without writing if it does not fit.
func (b Buffer) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) || int64(len(p)) > int64(len(b))-off {
		return 0, fmt.Errorf("oci: write of %d bytes at offset %d outside a %d-byte buffer", len(p), off, len(b))
	}
	return copy(b[off:], p), nil
}
