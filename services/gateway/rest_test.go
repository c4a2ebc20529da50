package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestLimitBody(t *testing.T) {
	var got string
	h := limitBody(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
	}), 10)
	tests := []struct {
		name   string
		body   io.Reader
		length int64
		status int
	}{
		{"small", strings.NewReader("0123456789"), 10, 200},
		{"declared too large", strings.NewReader("01234567890"), 11, 413},
		{"chunked too large", io.MultiReader(strings.NewReader("0123456789"), strings.NewReader("x")), -1, 413},
		{"chunked small", io.MultiReader(strings.NewReader("01234")), -1, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = ""
			r := httptest.NewRequest("POST", "/v1/orgs", tt.body)
			r.ContentLength = tt.length
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d", w.Code, tt.status)
			}
			if tt.status == 413 {
				if got != "" || !strings.Contains(w.Body.String(), `"code":8`) || !strings.Contains(w.Body.String(), "limit of 10 bytes") {
					t.Fatalf("413 body = %s, handler saw %q", w.Body, got)
				}
			} else if got == "" {
				t.Fatal("handler did not get the body")
			}
		})
	}
}

func TestHeaderMatchers(t *testing.T) {
	if k, ok := incomingHeader("X-Request-Id"); !ok || k != "x-request-id" {
		t.Fatalf("incoming = %q %v", k, ok)
	}
	if k, ok := incomingHeader("Authorization"); !ok || !strings.EqualFold(k, "grpcgateway-authorization") && !strings.EqualFold(k, "authorization") {
		t.Fatalf("authorization = %q %v", k, ok)
	}
	if k, ok := outgoingHeader("x-request-id"); !ok || k != "X-Request-Id" {
		t.Fatalf("outgoing = %q %v", k, ok)
	}
	if _, ok := outgoingHeader("secret-header"); ok {
		t.Fatal("unexpected header forwarded")
	}
}
