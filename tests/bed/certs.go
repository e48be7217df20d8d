//go:build linux

package bed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Certs are the bed's TLS material, made fresh for each bed.
type Certs struct {
	CAPEM      []byte // the test CA the servers' certificates chain to; embed it in a loader's plan
	OtherCAPEM []byte // an unrelated CA: trusting only it must fail against the bed's servers

	Server    tls.Certificate // for Hostname and the bed's addresses, signed by the CA
	ServerPEM []byte          // certificate PEM (for docker-registry's config)
	ServerKey []byte          // private key PEM

	WrongName tls.Certificate // for WrongHostname only, signed by the CA

	pool *x509.CertPool
}

// Pool returns a pool holding only the test CA.
func (c *Certs) Pool() *x509.CertPool { return c.pool }

// WrongHostname is the only name the WrongName certificate carries.
const WrongHostname = "wrong.test"

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// NewCerts makes a CA, a server certificate for names and ips, a
// certificate for WrongHostname, and a second unrelated CA.
func NewCerts(names []string, ips []net.IP) (*Certs, error) {
	ca, err := newCA("ociboot test CA")
	if err != nil {
		return nil, err
	}
	other, err := newCA("unrelated test CA")
	if err != nil {
		return nil, err
	}
	c := &Certs{CAPEM: ca.pem, OtherCAPEM: other.pem, pool: x509.NewCertPool()}
	c.pool.AddCert(ca.cert)
	var key []byte
	if c.Server, c.ServerPEM, key, err = ca.leaf(names, ips); err != nil {
		return nil, err
	}
	c.ServerKey = key
	if c.WrongName, _, _, err = ca.leaf([]string{WrongHostname}, nil); err != nil {
		return nil, err
	}
	return c, nil
}

func newCA(name string) (*issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bed: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("bed: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("bed: CA certificate: %w", err)
	}
	return &issuer{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// leaf issues a server certificate.
func (ca *issuer) leaf(names []string, ips []net.IP) (tls.Certificate, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("bed: server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  ips,
		// A clock in the guest a little behind the host must still accept it.
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("bed: server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("bed: server key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("bed: server key pair: %w", err)
	}
	return pair, certPEM, keyPEM, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
