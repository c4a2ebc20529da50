module github.com/pyleeai/pylee/services/secrets

go 1.26
