// Command cryptobench measures, inside UEFI, the primitives a verified
// HTTPS download runs on every byte: SHA-256 (digest checks), AES-128-GCM
// decryption (TLS 1.3 records, as Go picks on a CPU with AES-NI) and a
// memory copy, each over 32 MiB in 16 KiB pieces, the size of a TLS
// record. Under emulation these rates, not the network, bound the download
// rate.
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"fmt"
	"os"
	"time"
)

const (
	total = 32 << 20
	piece = 16 << 10
)

func main() {
	key := make([]byte, 16)
	nonce := make([]byte, 12)
	plain := make([]byte, piece)
	for i := range plain {
		plain[i] = byte(i * 7)
	}
	h := sha256.New()
	report("sha256", func() error { h.Write(plain); return nil })

	block, err := aes.NewCipher(key)
	if err != nil {
		fail(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		fail(err)
	}
	report("aes-128-gcm-open", opener(gcm, nonce, plain))

	dst := make([]byte, piece)
	report("memcopy", func() error { copy(dst, plain); return nil })
}

// opener returns a step that authenticates and decrypts one sealed piece.
func opener(a cipher.AEAD, nonce, plain []byte) func() error {
	sealed := a.Seal(nil, nonce, plain, nil)
	out := make([]byte, 0, len(plain))
	return func() error {
		_, err := a.Open(out, nonce, sealed, nil)
		return err
	}
}

// report runs step over total bytes and prints the rate.
func report(name string, step func() error) {
	start := time.Now()
	for range total / piece {
		if err := step(); err != nil {
			fail(fmt.Errorf("%s: %w", name, err))
		}
	}
	d := time.Since(start)
	fmt.Printf("cryptobench: %s %.1f MB/s\n", name, total/d.Seconds()/1e6)
}

func fail(err error) {
	fmt.Printf("cryptobench: %v\n", err)
	os.Exit(1)
}
