module github.com/pyleeai/pylee/services/orgs

go 1.26
