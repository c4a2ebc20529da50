package gateway

import (
	"testing"
	"time"
)

func TestLimitersRefillPerMinuteWithTenSecondBurst(t *testing.T) {
	var l limiters
	now := time.Unix(1_000_000, 0)
	for i := range 10 { // 60 per minute: a burst of 10
		if d := l.take("k", 60, now); d != 0 {
			t.Fatalf("request %d waits %s within the burst", i, d)
		}
	}
	d := l.take("k", 60, now)
	if d <= 0 || d > time.Second {
		t.Fatalf("the 11th request waits %s, want (0, 1s]", d)
	}
	// A refused request spends nothing: a second later one more passes.
	if d := l.take("k", 60, now.Add(time.Second)); d != 0 {
		t.Fatalf("a second later: waits %s", d)
	}
	if d := l.take("k", 60, now.Add(time.Second)); d == 0 {
		t.Fatal("two requests passed on one second's refill")
	}
	// Another key, and no limit, are not affected.
	if d := l.take("other", 60, now); d != 0 {
		t.Fatalf("another key waits %s", d)
	}
	for range 1000 {
		if d := l.take("k", 0, now); d != 0 {
			t.Fatal("rpm 0 limited a request")
		}
	}
	// A changed limit starts a bucket of its own.
	if d := l.take("k", 600, now.Add(time.Second)); d != 0 {
		t.Fatalf("after the limit was raised: waits %s", d)
	}
}

func TestLimitersStayBounded(t *testing.T) {
	var l limiters
	now := time.Unix(1_000_000, 0)
	for i := range maxLimitKeys + 10 {
		l.take(string(rune(i))+"key", 60, now.Add(time.Duration(i)*time.Millisecond))
	}
	if len(l.m) > maxLimitKeys {
		t.Fatalf("%d buckets kept, bound %d", len(l.m), maxLimitKeys)
	}
}

func TestSessionTableCountsLiveSessions(t *testing.T) {
	s := &sessionTable{idle: time.Minute}
	now := time.Unix(1_000_000, 0)
	if !s.open("a", 2, now) {
		t.Fatal("no sessions yet, and refused")
	}
	s.touch("a", "s1", now)
	s.touch("a", "s2", now)
	s.touch("a", "s2", now) // the same session twice counts once
	if s.open("a", 2, now) {
		t.Fatal("a third session allowed at sessions_per_caller 2")
	}
	if !s.open("b", 2, now) || !s.open("a", 0, now) {
		t.Fatal("another caller, or no limit, refused")
	}
	s.end("a", "s1")
	if !s.open("a", 2, now) {
		t.Fatal("refused after a session ended")
	}
	s.touch("a", "s3", now)
	if s.open("a", 2, now.Add(30*time.Second)) {
		t.Fatal("allowed while both sessions are live")
	}
	if !s.open("a", 2, now.Add(2*time.Minute)) {
		t.Fatal("refused after both sessions idled out")
	}
}
