module github.com/pyleeai/pylee/services/deploy

go 1.26
