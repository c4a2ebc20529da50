// Package logbuf keeps the newest lines an instance wrote to standard
// error, bounded in lines and bytes, with every secret value it was told
// about replaced before a line is stored.
package logbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Redacted replaces a secret value.
const Redacted = "[REDACTED]"

// Buffer is an io.Writer that keeps the last MaxLines lines.
type Buffer struct {
	maxLines int
	maxLine  int

	mu      sync.Mutex
	secrets []string
	lines   []string // ring
	start   int
	dropped int64
	partial []byte
}

// New keeps at most maxLines lines of at most maxLine bytes each.
func New(maxLines, maxLine int) *Buffer {
	return &Buffer{maxLines: maxLines, maxLine: maxLine}
}

// SetSecrets sets the values to redact from now on (the longest first, so
// a value that contains another is replaced whole).
func (b *Buffer) SetSecrets(values []string) {
	s := make([]string, 0, len(values))
	for _, v := range values {
		if v != "" {
			s = append(s, v)
		}
	}
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && len(s[j]) > len(s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	b.mu.Lock()
	b.secrets = s
	b.mu.Unlock()
}

// Write implements io.Writer; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			b.partial = append(b.partial, p...)
			if len(b.partial) > b.maxLine*2 {
				b.add(string(b.partial))
				b.partial = b.partial[:0]
			}
			break
		}
		b.partial = append(b.partial, p[:i]...)
		b.add(string(b.partial))
		b.partial = b.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

// Line adds a line of the supervisor's own (an exit, a restart).
func (b *Buffer) Line(s string) {
	b.mu.Lock()
	b.add(s)
	b.mu.Unlock()
}

func (b *Buffer) add(line string) {
	for _, s := range b.secrets {
		line = strings.ReplaceAll(line, s, Redacted)
	}
	if len(line) > b.maxLine {
		line = line[:b.maxLine] + "…"
	}
	if len(b.lines) < b.maxLines {
		b.lines = append(b.lines, line)
		return
	}
	b.lines[b.start] = line
	b.start = (b.start + 1) % len(b.lines)
	b.dropped++
}

// Tail returns the newest n lines, oldest first, and how many lines were
// dropped before the oldest kept one.
func (b *Buffer) Tail(n int) ([]string, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	all := make([]string, 0, len(b.lines))
	all = append(all, b.lines[b.start:]...)
	all = append(all, b.lines[:b.start]...)
	if n > 0 && n < len(all) {
		return all[len(all)-n:], b.dropped + int64(len(all)-n)
	}
	return all, b.dropped
}
