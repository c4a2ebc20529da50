module github.com/pyleeai/pylee/services/gateway

go 1.26
