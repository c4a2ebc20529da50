module github.com/pyleeai/pylee/services/registry

go 1.26
