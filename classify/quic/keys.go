package quic

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// Sizes of the AEAD_AES_128_GCM Initial protection (RFC 9001 5.3).
const (
	keyLen    = 16
	ivLen     = 12
	hpLen     = 16
	secretLen = sha256.Size
	tagLen    = 16
	sampleLen = 16
)

// directionKeys protects one direction's Initial packets. The cipher objects
// are built once and reused for every packet.
type directionKeys struct {
	aead cipher.AEAD
	hp   cipher.Block
	iv   [ivLen]byte
}

// initialKeys is the pair derived from one client Destination Connection ID
// for one version.
type initialKeys struct {
	version uint32
	client  directionKeys
	server  directionKeys
}

// hkdfExpandLabel is TLS 1.3's HKDF-Expand-Label (RFC 8446 7.1) with an
// empty context, as QUIC uses it.
func hkdfExpandLabel(secret []byte, label string, length int) ([]byte, error) {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = append(info, byte(length>>8), byte(length), byte(len(full)))
	info = append(info, full...)
	info = append(info, 0)
	return hkdf.Expand(sha256.New, secret, string(info), length)
}

// initialSecrets returns the client and server Initial secrets for a DCID.
func initialSecrets(p *versionParams, dcid []byte) (client, server []byte, err error) {
	initial, err := hkdf.Extract(sha256.New, dcid, p.salt)
	if err != nil {
		return nil, nil, fmt.Errorf("quic: initial secret: %w", err)
	}
	if client, err = hkdfExpandLabel(initial, "client in", secretLen); err != nil {
		return nil, nil, fmt.Errorf("quic: client initial secret: %w", err)
	}
	if server, err = hkdfExpandLabel(initial, "server in", secretLen); err != nil {
		return nil, nil, fmt.Errorf("quic: server initial secret: %w", err)
	}
	return client, server, nil
}

// keyMaterial is the raw key, IV and header-protection key of one direction.
type keyMaterial struct {
	key, iv, hp []byte
}

func deriveMaterial(p *versionParams, secret []byte) (keyMaterial, error) {
	var m keyMaterial
	var err error
	if m.key, err = hkdfExpandLabel(secret, p.keyLabel, keyLen); err != nil {
		return m, fmt.Errorf("quic: packet key: %w", err)
	}
	if m.iv, err = hkdfExpandLabel(secret, p.ivLabel, ivLen); err != nil {
		return m, fmt.Errorf("quic: packet iv: %w", err)
	}
	if m.hp, err = hkdfExpandLabel(secret, p.hpLabel, hpLen); err != nil {
		return m, fmt.Errorf("quic: header protection key: %w", err)
	}
	return m, nil
}

func (d *directionKeys) init(m keyMaterial) error {
	block, err := aes.NewCipher(m.key)
	if err != nil {
		return fmt.Errorf("quic: packet cipher: %w", err)
	}
	if d.aead, err = cipher.NewGCM(block); err != nil {
		return fmt.Errorf("quic: packet aead: %w", err)
	}
	if d.hp, err = aes.NewCipher(m.hp); err != nil {
		return fmt.Errorf("quic: header protection cipher: %w", err)
	}
	copy(d.iv[:], m.iv)
	return nil
}

// deriveInitialKeys builds both directions' Initial keys for a DCID.
func deriveInitialKeys(version uint32, dcid []byte) (*initialKeys, error) {
	p := params(version)
	if p == nil {
		return nil, fmt.Errorf("quic: derive keys: %w: 0x%08x", ErrUnsupportedVersion, version)
	}
	cs, ss, err := initialSecrets(p, dcid)
	if err != nil {
		return nil, err
	}
	k := &initialKeys{version: version}
	for _, d := range []struct {
		secret []byte
		dst    *directionKeys
	}{{cs, &k.client}, {ss, &k.server}} {
		m, err := deriveMaterial(p, d.secret)
		if err != nil {
			return nil, err
		}
		if err := d.dst.init(m); err != nil {
			return nil, err
		}
	}
	return k, nil
}
