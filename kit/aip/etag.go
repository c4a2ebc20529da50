package aip

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
)

// ETag derives the etag of a resource from its name and revision, a counter
// the store increments on every change. It is opaque to clients: they only
// send it back.
func ETag(name string, revision int64) string {
	sum := sha256.Sum256([]byte(name + "\x00" + strconv.FormatInt(revision, 10)))
	return hex.EncodeToString(sum[:8])
}

// ETagMatches reports whether a client-sent etag matches the current one.
// An empty sent etag matches anything: the client did not ask for a check.
func ETagMatches(sent, current string) bool {
	if sent == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(sent), []byte(current)) == 1
}
