module github.com/pyleeai/pylee/services/audit

go 1.26
