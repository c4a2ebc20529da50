package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestBindEnv(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	dir := fs.String("data-dir", "./.pylee", "")
	addr := fs.String("http-addr", ":8080", "")
	other := fs.String("grpc-addr", ":9090", "")
	var tok Secret
	fs.Var(SecretValue{&tok}, "token", "")
	t.Setenv("PYLEE_DATA_DIR", "/env/dir")
	t.Setenv("PYLEE_HTTP_ADDR", ":1")
	t.Setenv("PYLEE_TOKEN", "pyl_envsecret")
	if err := fs.Parse([]string{"--http-addr", ":2"}); err != nil {
		t.Fatal(err)
	}
	if err := BindEnv(fs); err != nil {
		t.Fatal(err)
	}
	if *dir != "/env/dir" || *addr != ":2" || *other != ":9090" || tok.Reveal() != "pyl_envsecret" {
		t.Fatalf("got dir=%s addr=%s other=%s", *dir, *addr, *other)
	}
	if fs.Lookup("token").Value.String() == "pyl_envsecret" {
		t.Fatal("flag value shows the secret")
	}
}

func TestBindEnvInvalid(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.Int("page-size", 1, "")
	t.Setenv("PYLEE_PAGE_SIZE", "not-a-number-secret")
	err := BindEnv(fs)
	if err == nil || !strings.Contains(err.Error(), "PYLEE_PAGE_SIZE") || strings.Contains(err.Error(), "not-a-number-secret") {
		t.Fatalf("err = %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const canary = "pyl_canary_value_123"
	s := NewSecret(canary)
	type holder struct {
		Token Secret
	}
	j, _ := json.Marshal(holder{s})
	core, logs := observer.New(zapcore.DebugLevel)
	zap.New(core).Info("x", zap.Any("holder", holder{s}), zap.Stringer("s", s), zap.Any("s2", s))
	outs := []string{
		s.String(), fmt.Sprintf("%v %s %+v %#v %q %x", s, s, s, s, s, s),
		fmt.Sprint(holder{s}), fmt.Sprintf("%+v", holder{s}), string(j),
	}
	for _, e := range logs.All() {
		for _, v := range e.ContextMap() {
			outs = append(outs, fmt.Sprint(v))
		}
	}
	for _, o := range outs {
		if strings.Contains(o, canary) {
			t.Fatalf("secret printed: %s", o)
		}
	}
	if s.Reveal() != canary {
		t.Fatal("Reveal")
	}
}
