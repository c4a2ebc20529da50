# Pylee: the developer entry points. Run from the repository root.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
BUF       := tools/node_modules/.bin/buf
GOMODCACHE = $(shell $(GO) env GOMODCACHE)
# Every module of the workspace, so `go test` and `go vet` reach all of them.
PKGS      := github.com/pyleeai/pylee/...
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(CURDIR)/tools/bin/golangci-lint-$(GOLANGCI_LINT_VERSION)
LINT_MODULES := kit services/orgs services/registry services/audit services/gateway services/secrets services/deploy cmd/pylee
# buf/validate/validate.proto (protovalidate's rules) of this release of
# github.com/bufbuild/protovalidate; it must be the file that the descriptor
# module buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go (pinned in
# gen/go/go.mod by buf.build/go/protovalidate, see docs/design.md) was
# generated from, so both sides agree on extension numbers and rules.
PROTOVALIDATE_PROTO_VERSION := v1.2.2
GOOGLEAPIS_FILES := api/annotations.proto api/http.proto api/httpbody.proto api/client.proto \
	api/field_behavior.proto api/resource.proto api/launch_stage.proto \
	rpc/status.proto rpc/error_details.proto rpc/code.proto

.PHONY: golangci-lint all tools third-party generate generate-proto generate-ent generate-docs migrations check-migrations lint buf-lint buf-breaking vet test fuzz build bench bench-official clean

all: build

## tools: installs the pinned non-Go tools (buf, googleapis protos) exactly as tools/package-lock.json
## lists them (npm ci: the lock file holds every platform's optional buf package, so npm 10 and 11
## agree on it and nothing rewrites it).
tools: $(BUF) $(GOLANGCI_LINT)
$(BUF): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	touch $(BUF)

## third-party: copies the third-party protos we import into the git-ignored third_party/.
third-party: tools
	rm -rf third_party
	mkdir -p third_party/googleapis/google/api third_party/googleapis/google/rpc
	for f in $(GOOGLEAPIS_FILES); do cp tools/node_modules/google-proto-files/google/$$f third_party/googleapis/google/$$f; done
	$(GO) mod download github.com/grpc-ecosystem/grpc-gateway/v2
	gw=$$($(GO) list -m -f '{{.Dir}}' github.com/grpc-ecosystem/grpc-gateway/v2); \
	  mkdir -p third_party/grpc-gateway/protoc-gen-openapiv2/options; \
	  cp $$gw/protoc-gen-openapiv2/options/*.proto third_party/grpc-gateway/protoc-gen-openapiv2/options/
	$(GO) mod download github.com/bufbuild/protovalidate@$(PROTOVALIDATE_PROTO_VERSION)
	pv=$$($(GO) list -m -f '{{.Dir}}' github.com/bufbuild/protovalidate@$(PROTOVALIDATE_PROTO_VERSION)); \
	  mkdir -p third_party/protovalidate/buf/validate; \
	  cp $$pv/proto/protovalidate/buf/validate/validate.proto third_party/protovalidate/buf/validate/
	chmod -R u+w third_party

## generate: rewrites gen/ (protobuf, gRPC, grpc-gateway, OpenAPI), ent code and docs.
generate: generate-proto generate-ent generate-docs

generate-docs:
	$(GO) run ./services/orgs/internal/access/permdoc > docs/permissions.md
	$(GO) run ./cmd/pylee/internal/actions/actiondoc > docs/audit-actions.md

generate-proto: third-party
	rm -rf gen/go/pylee gen/openapi
	$(BUF) generate --path proto/pylee

generate-ent:
	$(GO) generate github.com/pyleeai/pylee/services/...

## migrations: writes a versioned migration named NAME, for SQLite and PostgreSQL, in every service
## whose ent schema changed (services/<svc>/internal/ent/migrate/migrations/); PostgreSQL's dev
## database is a scratch database on PYLEE_TEST_POSTGRES_URL or 127.0.0.1:5432.
MIGRATION_GENERATORS = $(sort $(wildcard services/*/internal/ent/migrategen))
migrations:
	@if [ -z "$(NAME)" ]; then echo "usage: make migrations NAME=what_changed"; exit 1; fi
	for g in $(MIGRATION_GENERATORS); do $(GO) run ./$$g -name '$(NAME)'; done

## check-migrations: fails when a service's ent schema changed without a migration.
check-migrations:
	for g in $(MIGRATION_GENERATORS); do $(GO) run ./$$g -check; done

## lint: buf lint, gofmt and go vet.
lint: buf-lint vet golangci-lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## golangci-lint: the linters of .golangci.yml on every module of the workspace.
golangci-lint: $(GOLANGCI_LINT)
	for m in $(LINT_MODULES); do (cd $$m && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...) || exit 1; done

# golangci-lint, pinned, built into the git-ignored tools/bin (reused by later runs).
$(GOLANGCI_LINT):
	GOBIN=$(CURDIR)/tools/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(CURDIR)/tools/bin/golangci-lint $@

buf-lint: third-party
	$(BUF) lint proto

## buf-breaking: compares proto/ with the main branch (built with the same third_party/).
buf-breaking: third-party
	@if git rev-parse --verify -q main >/dev/null && git cat-file -e main:proto 2>/dev/null; then \
	  tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	  git archive main proto buf.yaml | tar -x -C $$tmp; cp -r third_party $$tmp/; \
	  (cd $$tmp && $(CURDIR)/$(BUF) build proto -o image.binpb); \
	  $(BUF) breaking proto --exclude-imports --against $$tmp/image.binpb; \
	else echo "buf breaking: main has no proto/ yet"; fi

vet:
	$(GO) vet $(PKGS)

## test: every test of every module, against SQLite and PostgreSQL
## (PostgreSQL on 127.0.0.1:5432 or PYLEE_TEST_POSTGRES_URL; skipped with a
## message when absent, a failure when CI=true).
TESTFLAGS ?=
test:
	$(GO) test -count=1 -timeout 30m $(TESTFLAGS) $(PKGS)

## fuzz: runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzPatternParse$$' -fuzztime $(FUZZTIME) ./kit/aip/
	$(GO) test -run '^$$' -fuzz '^FuzzPageTokenDecode$$' -fuzztime $(FUZZTIME) ./kit/aip/
	$(GO) test -run '^$$' -fuzz '^FuzzParseServer$$' -fuzztime $(FUZZTIME) ./kit/names/
	$(GO) test -run '^$$' -fuzz '^FuzzParseBearer$$' -fuzztime $(FUZZTIME) ./kit/auth/
	$(GO) test -run '^$$' -fuzz '^FuzzUnverifiedIssuer$$' -fuzztime $(FUZZTIME) ./kit/auth/
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyExport$$' -fuzztime $(FUZZTIME) ./kit/auditlog/
	$(GO) test -run '^$$' -fuzz '^FuzzParseFilter$$' -fuzztime $(FUZZTIME) ./services/orgs/
	$(GO) test -run '^$$' -fuzz '^FuzzParseEventFilter$$' -fuzztime $(FUZZTIME) ./services/audit/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./services/registry/internal/serverjson/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./services/registry/internal/semvers/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRange$$' -fuzztime $(FUZZTIME) ./services/registry/internal/semvers/

build:
	mkdir -p bin
	$(GO) build -o bin/pylee ./cmd/pylee

## bench: GetOrganization over gRPC and REST against one server, durable audit
## appends, org writes with the outbox on and off, and registry listing (10,000
## entries on PostgreSQL) over gRPC, REST and the official API; prints rates and ratios.
bench:
	$(GO) test -run '^$$' -bench GetOrganization -benchmem -benchtime 3s -count 1 ./cmd/pylee/ | tee bench.txt
	$(GO) test -run '^$$' -bench Append -benchtime 2s -count 1 ./services/audit/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench UpdateOrganization -benchtime 2s -count 1 ./services/orgs/internal/store/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'Check|GetOrganizationAuthz' -benchtime 2s -count 1 ./services/orgs/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench RegistryList -benchtime 3s -count 1 ./cmd/pylee/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench Resolve -benchtime 2s -count 1 ./services/secrets/ | tee -a bench.txt
	$(GO) run ./cmd/pylee/internal/benchratio < bench.txt

## bench-official: the official MCP Registry read API and the REST entries list under wrk: 500
## servers on SQLite and PostgreSQL, as the admin and as a service account that sees 50 of them;
## prints req/s, p50, p99 and response sizes (BENCH_OFFICIAL_FLAGS=-quick for a trial run).
BENCH_OFFICIAL_FLAGS ?=
bench-official:
	@command -v wrk >/dev/null || { echo "bench-official needs wrk: apt-get install -y wrk (Debian, Ubuntu) or brew install wrk (macOS)"; exit 1; }
	$(GO) run ./cmd/pylee/internal/benchofficial $(BENCH_OFFICIAL_FLAGS)

## bench-deploy: pin to serving (command runtime; a warm npm package when npx is installed),
## rollback to the warm version, and memory per idle instance (bridge and child).
bench-deploy:
	$(GO) test -run '^$$' -bench 'BenchmarkDeploy' -benchtime 5x -count 1 ./cmd/pylee/ | tee bench-deploy.txt
	$(GO) test -run '^$$' -bench IdleInstanceMemory -benchtime 1x -count 1 ./services/deploy/internal/instance/ | tee -a bench-deploy.txt

## bench-mcp: tools/call through the MCP gateway against the same upstream called directly, in one
## run: p50/p99 at 1,000 calls/s and throughput at 32 sessions, with the ratios; the delay added to a
## tool stream's first event; throughput with the audit of calls on and off.
bench-mcp:
	$(GO) test -run '^$$' -bench 'BenchmarkMCPToolCall|BenchmarkMCPOverhead' -benchtime 1x -count 1 ./cmd/pylee/ | tee bench-mcp.txt

clean:
	rm -rf bin third_party bench.txt bench-deploy.txt bench-mcp.txt
