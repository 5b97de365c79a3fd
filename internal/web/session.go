package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// sessionCookie holds a signed-in user; stateCookie the OAuth state of a
// sign-in under way.
const (
	sessionCookie = "convox_build_session"
	stateCookie   = "convox_build_oauth"
)

// session is what the session cookie carries, sealed: nobody but the
// server can read it (it holds the user's GitHub token) or forge it.
type session struct {
	Login   string    `json:"l"`
	Token   string    `json:"t"`
	Expires time.Time `json:"e"`
}

// oauthState is what the state cookie carries during sign-in.
type oauthState struct {
	State   string    `json:"s"`
	Next    string    `json:"n"`
	Expires time.Time `json:"e"`
}

// sealer seals cookie values with AES-256-GCM under a key derived from the
// server's secret, so every replica given the same secret reads them.
type sealer struct{ aead cipher.AEAD }

func newSealer(secret []byte) (*sealer, error) {
	if len(secret) < 16 {
		return nil, errors.New("session secret: at least 16 bytes are needed")
	}
	key := sha256.Sum256(append([]byte("convox-build session v1\x00"), secret...))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal returns v sealed for cookie name (a value sealed for one cookie
// does not open as another).
func (s *sealer) seal(name string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(name))), nil
}

// open reads a value seal wrote for cookie name into v.
func (s *sealer) open(name, value string, v any) error {
	data, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(data) < s.aead.NonceSize() {
		return errors.New("malformed cookie")
	}
	plain, err := s.aead.Open(nil, data[:s.aead.NonceSize()], data[s.aead.NonceSize():], []byte(name))
	if err != nil {
		return errors.New("cookie not sealed by this server")
	}
	return json.Unmarshal(plain, v)
}

// setCookie sets a sealed cookie: HttpOnly, SameSite=Lax, Secure when the
// server is behind TLS.
func (w *Server) setCookie(rw http.ResponseWriter, name string, v any, maxAge time.Duration) error {
	value, err := w.sealer.seal(name, v)
	if err != nil {
		return err
	}
	http.SetCookie(rw, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: w.secure(), SameSite: http.SameSiteLaxMode})
	return nil
}

func (w *Server) clearCookie(rw http.ResponseWriter, name string) {
	http.SetCookie(rw, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: w.secure(), SameSite: http.SameSiteLaxMode})
}

// user returns the signed-in user, or nil.
func (w *Server) user(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	var s session
	if w.sealer.open(sessionCookie, c.Value, &s) != nil || s.Login == "" || w.now().After(s.Expires) {
		return nil
	}
	return &s
}
