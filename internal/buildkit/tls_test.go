package buildkit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
	"github.com/convox-build-action/convox-build-action/internal/devenv"
)

// pki writes a CA and a certificate signed by it; it returns the files.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func newPKI(t *testing.T, dir string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{dir: dir, caCert: ca, caKey: key}
	p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue makes a certificate for a server (127.0.0.1) or a client.
func (p *pki) issue(t *testing.T, name string, server bool) (cert, key string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(k)
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestConnectOverTCPWithMutualTLS(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir)
	srvCert, srvKey := p.issue(t, "server", true)
	cliCert, cliKey := p.issue(t, "client", false)
	tcp := freePort(t)
	// The socket path must stay short: keep the root under /tmp.
	root, err := os.MkdirTemp("", "bk-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	d, err := devenv.StartBuildkitd(context.Background(), devenv.BuildkitdOptions{Root: root, TCPAddr: tcp,
		TLS: &devenv.TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: srvCert, Key: srvKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })

	addr := "tcp://" + tcp
	c, err := buildkit.Connect(context.Background(), addr, buildkit.ConnectOptions{CACert: filepath.Join(dir, "ca.pem"), Cert: cliCert, Key: cliKey})
	if err != nil {
		t.Fatalf("mTLS connect: %v", err)
	}
	ws, err := c.Workers(context.Background())
	c.Close()
	if err != nil || len(ws) == 0 || !strings.Contains(strings.Join(ws[0].Platforms, ","), "linux/") {
		t.Fatalf("workers over mTLS = %+v, %v", ws, err)
	}

	// Without a client certificate the daemon refuses: a bounded failure
	// naming the address.
	start := time.Now()
	_, err = buildkit.Connect(context.Background(), addr, buildkit.ConnectOptions{CACert: filepath.Join(dir, "ca.pem"), Timeout: 3 * time.Second})
	if err == nil || !strings.Contains(err.Error(), addr) || time.Since(start) > 15*time.Second {
		t.Errorf("connect without client certificate: %v after %s", err, time.Since(start))
	}
	// Half a key pair is a mistake named at once.
	if _, err := buildkit.Connect(context.Background(), addr, buildkit.ConnectOptions{Cert: cliCert}); err == nil || !strings.Contains(err.Error(), "needs both cert and key") {
		t.Errorf("cert without key: %v", err)
	}
}
