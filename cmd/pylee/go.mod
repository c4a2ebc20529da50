module github.com/pyleeai/pylee/cmd/pylee

go 1.26
