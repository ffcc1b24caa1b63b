package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
)

// certStore holds the HTTPS listener's certificates. They are swapped as
// a whole on reload, so handshakes in progress and connections already
// held keep what they had.
type certStore struct {
	certFiles, keyFiles []string
	certs               atomic.Pointer[[]tls.Certificate]
}

func newCertStore(certFiles, keyFiles []string) (*certStore, error) {
	cs := &certStore{certFiles: certFiles, keyFiles: keyFiles}
	if err := cs.reload(); err != nil {
		return nil, err
	}
	return cs, nil
}

// reload reads every pair again; on any error the certificates in use
// stay.
func (cs *certStore) reload() error {
	if len(cs.certFiles) == 0 || len(cs.certFiles) != len(cs.keyFiles) {
		return errors.New("tls: -tls-cert and -tls-key must come in pairs")
	}
	certs := make([]tls.Certificate, 0, len(cs.certFiles))
	for i, cf := range cs.certFiles {
		c, err := tls.LoadX509KeyPair(cf, cs.keyFiles[i])
		if err != nil {
			return fmt.Errorf("tls: %s, %s: %w", cf, cs.keyFiles[i], err)
		}
		certs = append(certs, c)
	}
	cs.certs.Store(&certs)
	return nil
}

// get picks the certificate for a client hello: the first one valid for
// its server name (SNI) and supported by the client, else the first.
func (cs *certStore) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := *cs.certs.Load()
	if hello.ServerName != "" {
		for i := range certs {
			if hello.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
	}
	return &certs[0], nil
}

// tlsConfig is the HTTPS listener's configuration. HTTP/1.1 only: the
// client server is fasthttp.
func (cs *certStore) tlsConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: cs.get,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
	}
}

// ReloadTLS reads the HTTPS certificates and keys again (on SIGHUP). New
// handshakes use them; connections already open are not touched. On
// error the old certificates stay in use.
func (s *Server) ReloadTLS() error {
	if s.certs == nil {
		return errors.New("tls: no HTTPS listener configured")
	}
	if err := s.certs.reload(); err != nil {
		s.log.Error("tls reload failed; keeping the certificates in use", "err", err)
		return err
	}
	s.log.Info("tls certificates reloaded", "files", len(s.cfg.TLSCert))
	return nil
}
