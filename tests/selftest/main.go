// Command selftest exercises the Go runtime inside UEFI: goroutines, the
// garbage collector, timers, clocks, randomness, hashing, TLS and DMA
// regions. It prints one line per check and a verdict, and exits non-zero
// when a check fails. The arguments "panic" and "exit3" select variants that
// show how a crashing or exiting program returns to the firmware; "nil"
// dereferences a nil pointer.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ociboot/ociboot/efirt"
	"github.com/ociboot/ociboot/uefi"
	"github.com/usbarmory/tamago/dma"
)

func main() {
	fmt.Printf("selftest: Go %s %s/%s, %d CPU, GOMAXPROCS %d, args %q\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), os.Args[1:])
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "panic":
			done := make(chan struct{})
			go func() {
				defer close(done)
				var m map[string]int
				m["selftest"] = 1 // panics: assignment to entry in nil map
			}()
			<-done
			fmt.Println("selftest: the panicking goroutine returned: FAIL")
			os.Exit(1)
		case "nil":
			// A nil dereference must fault and panic as it does on Linux,
			// and recover must see a runtime error.
			var p *struct{ a, b int }
			func() {
				defer func() {
					r := recover()
					fmt.Printf("selftest: recovered %v\n", r)
				}()
				fmt.Println(p.b)
			}()
			p.a = 5 // not recovered: the program dies with SIGSEGV
			fmt.Println("selftest: wrote through a nil pointer: FAIL")
			os.Exit(1)
		case "kfault":
			// A bad pointer makes efirt itself fault; that is a kernel bug
			// the firmware's own handler reports.
			fmt.Println("selftest: passing address 8 to clock_gettime")
			syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, 8, 0)
			fmt.Println("selftest: the kernel fault went unnoticed: FAIL")
			os.Exit(1)
		case "rand":
			a, b := make([]byte, 16), make([]byte, 16)
			rand.Read(a)
			rand.Read(b)
			fmt.Printf("selftest: entropy from %s: %x %x\n", efirt.ReadStats().Entropy, a, b)
			if bytes.Equal(a, b) {
				os.Exit(1)
			}
			os.Exit(0)
		case "exit3":
			fmt.Println("selftest: exiting with status 3")
			os.Exit(3)
		default:
			fmt.Printf("selftest: unknown variant %q (want panic, nil, kfault, rand or exit3)\n", os.Args[1])
			os.Exit(2)
		}
	}

	checks := []struct {
		name string
		fn   func() (string, error)
	}{
		{"goroutines", checkGoroutines},
		{"gc", checkGC},
		{"timers", checkTimers},
		{"monotonic", checkMonotonic},
		{"wallclock", checkWallClock},
		{"rand", checkRand},
		{"sha256", checkSHA256},
		{"tls", checkTLS},
		{"dma", checkDMA},
		{"mmap", checkMmap},
	}
	failed := 0
	for _, c := range checks {
		start := time.Now()
		detail, err := c.fn()
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			failed++
			fmt.Printf("selftest: %-10s FAIL %v (%v)\n", c.name, err, took)
			continue
		}
		fmt.Printf("selftest: %-10s ok   %s (%v)\n", c.name, detail, took)
	}
	st := efirt.ReadStats()
	fmt.Printf("selftest: efirt     threads created %d, ENOSYS %d, counter %d MHz, pages peak %d MiB, entropy from %s\n",
		st.ThreadsCreated, st.ENOSYS, st.CounterHz/1e6, st.PagesPeak*4096>>20, st.Entropy)
	if failed > 0 {
		fmt.Printf("selftest: verdict FAIL (%d of %d checks failed)\n", failed, len(checks))
		os.Exit(1)
	}
	fmt.Printf("selftest: verdict PASS (%d checks)\n", len(checks))
}

// checkGoroutines passes a token around a ring of 1,000 goroutines.
func checkGoroutines() (string, error) {
	const n, laps = 1000, 10
	first := make(chan int)
	in := first
	for i := 0; i < n; i++ {
		out := make(chan int)
		go func(in <-chan int, out chan<- int) {
			for v := range in {
				out <- v + 1
			}
			close(out)
		}(in, out)
		in = out
	}
	total := 0
	for lap := 0; lap < laps; lap++ {
		first <- 0
		total += <-in
	}
	close(first)
	for range in {
	}
	if total != n*laps {
		return "", fmt.Errorf("token counted %d hops, want %d", total, n*laps)
	}
	return fmt.Sprintf("%d goroutines, %d hops", n, total), nil
}

var sink [][]byte

// checkGC allocates well over 1 GiB in total and requires the collector to
// have run at least 20 times.
func checkGC() (string, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const chunk = 1 << 20
	var total int
	for total < 1200<<20 {
		b := make([]byte, chunk)
		b[0], b[len(b)-1] = 1, 2
		sink = append(sink, b)
		if len(sink) > 16 {
			sink = sink[1:]
		}
		total += chunk
	}
	sink = nil
	runtime.ReadMemStats(&after)
	gcs := after.NumGC - before.NumGC
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc < 1<<30 || gcs < 20 {
		return "", fmt.Errorf("allocated %d MiB with %d GC cycles, want >= 1024 MiB and >= 20", alloc>>20, gcs)
	}
	return fmt.Sprintf("%d MiB allocated, %d GC cycles, heap sys %d MiB", alloc>>20, gcs, after.HeapSys>>20), nil
}

// checkTimers starts timers in reverse order and expects them to fire in
// deadline order, then checks time.Sleep waits at least as long as asked.
func checkTimers() (string, error) {
	const n = 10
	fired := make(chan int, n)
	for i := n - 1; i >= 0; i-- {
		i := i
		time.AfterFunc(time.Duration(i+1)*15*time.Millisecond, func() { fired <- i })
	}
	for want := 0; want < n; want++ {
		if got := <-fired; got != want {
			return "", fmt.Errorf("timer %d fired in position %d", got, want)
		}
	}
	start, idle := time.Now(), efirt.ReadStats().Idle
	time.Sleep(50 * time.Millisecond)
	d, idle := time.Since(start), efirt.ReadStats().Idle-idle
	if d < 50*time.Millisecond {
		return "", fmt.Errorf("time.Sleep(50ms) returned after %v", d)
	}
	// With every thread asleep the CPU waits in the firmware, and efirt
	// counts that wait; sysmon's wake-ups take a little of it.
	if idle < d/2 || idle > d {
		return "", fmt.Errorf("idle %v during a %v sleep, want most of it", idle, d)
	}
	return fmt.Sprintf("%d timers in order, sleep ok, %d%% of it idle", n, 100*idle/d), nil
}

// checkMonotonic compares the monotonic clock with the firmware's Stall.
func checkMonotonic() (string, error) {
	const stall = 200 * time.Millisecond
	start := time.Now()
	if err := uefi.Stall(stall); err != nil {
		return "", err
	}
	d := time.Since(start)
	if d < stall*9/10 || d > stall*3/2 {
		return "", fmt.Errorf("firmware Stall(%v) took %v by the monotonic clock", stall, d)
	}
	return fmt.Sprintf("Stall(%v) measured %v", stall, d.Round(time.Millisecond)), nil
}

// checkWallClock compares time.Now with the firmware's real-time clock.
func checkWallClock() (string, error) {
	rtc, err := uefi.GetTime()
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	if d := now.Sub(rtc); d < -2*time.Second || d > 2*time.Second {
		return "", fmt.Errorf("time.Now %v differs from the RTC %v by %v", now, rtc, d)
	}
	if now.Year() < 2024 {
		return "", fmt.Errorf("time.Now %v is implausibly early", now)
	}
	return fmt.Sprintf("%s (RTC %s)", now.Format(time.RFC3339), rtc.Format(time.RFC3339)), nil
}

// checkRand reads crypto/rand twice and requires different results.
func checkRand() (string, error) {
	a, b := make([]byte, 32), make([]byte, 32)
	if _, err := rand.Read(a); err != nil {
		return "", err
	}
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	if bytes.Equal(a, b) || bytes.Equal(a, make([]byte, 32)) {
		return "", fmt.Errorf("two reads gave %x and %x", a, b)
	}
	return hex.EncodeToString(a[:8]) + " != " + hex.EncodeToString(b[:8]), nil
}

// checkSHA256 hashes a 256 MiB buffer and compares it with a digest
// computed piecewise over the same pattern.
func checkSHA256() (string, error) {
	const size = 256 << 20
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i*7 + i>>12)
	}
	start := time.Now()
	whole := sha256.Sum256(buf)
	took := time.Since(start)
	h := sha256.New()
	for off := 0; off < size; off += 1 << 20 {
		h.Write(buf[off : off+1<<20])
	}
	if !bytes.Equal(h.Sum(nil), whole[:]) {
		return "", errors.New("piecewise and one-shot digests differ")
	}
	mbps := float64(size) / took.Seconds() / 1e6
	return fmt.Sprintf("%x… of 256 MiB, %.0f MB/s", whole[:6], mbps), nil
}

// checkTLS runs a TLS 1.3 handshake over net.Pipe with a fresh self-signed
// certificate and moves 16 MiB from server to client.
func checkTLS() (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "selftest.ociboot"},
		DNSNames:              []string{"selftest.ociboot"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)

	const size = 16 << 20
	payload := make([]byte, size)
	if _, err := rand.Read(payload); err != nil {
		return "", err
	}
	want := sha256.Sum256(payload)

	cc, sc := net.Pipe()
	server := tls.Server(sc, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS13,
	})
	client := tls.Client(cc, &tls.Config{RootCAs: pool, ServerName: "selftest.ociboot", MinVersion: tls.VersionTLS13})

	var wg sync.WaitGroup
	var serr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer server.Close()
		if serr = server.Handshake(); serr != nil {
			return
		}
		_, serr = server.Write(payload)
	}()
	start := time.Now()
	if err := client.Handshake(); err != nil {
		return "", fmt.Errorf("handshake: %w", err)
	}
	state := client.ConnectionState()
	h := sha256.New()
	n, err := io.Copy(h, client)
	client.Close()
	wg.Wait()
	if serr != nil {
		return "", fmt.Errorf("server: %w", serr)
	}
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), want[:]) {
		return "", fmt.Errorf("received %d bytes with a different digest", n)
	}
	took := time.Since(start)
	return fmt.Sprintf("%s %s, %d MiB in %v (%.0f MB/s)", tls.VersionName(state.Version),
		tls.CipherSuiteName(state.CipherSuite), size>>20, took.Round(time.Millisecond), float64(size)/took.Seconds()/1e6), nil
}

// checkDMA builds a tamago/dma region over firmware pages and allocates and
// frees aligned blocks in it.
func checkDMA() (string, error) {
	const size = 1 << 20
	pages, err := uefi.AllocatePages(size)
	if err != nil {
		return "", err
	}
	defer uefi.FreePages(pages, size)
	region, err := dma.NewRegion(uint(pages), size, false)
	if err != nil {
		return "", err
	}
	var addrs []uint
	for _, align := range []int{16, 64, 512, 4096} {
		addr, buf := region.Reserve(1000, align)
		if addr == 0 || addr%uint(align) != 0 || len(buf) != 1000 {
			return "", fmt.Errorf("Reserve(1000, %d) gave %#x (len %d)", align, addr, len(buf))
		}
		if addr < uint(pages) || addr+1000 > uint(pages)+size {
			return "", fmt.Errorf("block %#x lies outside the region %#x+%#x", addr, pages, size)
		}
		for i := range buf {
			buf[i] = byte(align)
		}
		addrs = append(addrs, addr)
	}
	used := len(region.UsedBlocks())
	for _, a := range addrs {
		region.Release(a)
	}
	if n := len(region.UsedBlocks()); used != len(addrs) || n != 0 {
		return "", fmt.Errorf("used blocks %d after reserve, %d after release", used, n)
	}
	return fmt.Sprintf("region %#x+%d KiB, %d aligned blocks reserved and released", pages, size>>10, len(addrs)), nil
}

// checkMmap maps anonymous memory directly and unmaps it piecewise (middle,
// head, tail), as the runtime's aligned reservations do, and checks every
// page goes back to the firmware.
func checkMmap() (string, error) {
	const page, n = 4096, 16
	before := efirt.ReadStats().PagesHeld
	mem, err := syscall.Mmap(-1, 0, n*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return "", fmt.Errorf("mmap: %w", err)
	}
	// syscall.Munmap only takes whole mappings; the pieces go directly.
	addr := uintptr(unsafe.Pointer(&mem[0]))
	for i, b := range mem {
		if b != 0 {
			return "", fmt.Errorf("fresh mapping has byte %#x at %d", b, i)
		}
	}
	for i := range mem {
		mem[i] = byte(i)
	}
	if got := efirt.ReadStats().PagesHeld - before; got != n {
		return "", fmt.Errorf("mapping %d pages holds %d", n, got)
	}
	for _, r := range [][2]uintptr{{6, 4}, {0, 2}, {14, 2}, {2, 4}, {10, 4}} {
		if _, _, e := syscall.Syscall(syscall.SYS_MUNMAP, addr+r[0]*page, r[1]*page, 0); e != 0 {
			return "", fmt.Errorf("munmap pages %d+%d: %v", r[0], r[1], e)
		}
	}
	if after := efirt.ReadStats().PagesHeld; after != before {
		return "", fmt.Errorf("%d pages held after unmapping everything, %d before", after, before)
	}
	return fmt.Sprintf("%d pages mapped zeroed, unmapped in 5 pieces", n), nil
}
