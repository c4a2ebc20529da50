package store_test

import (
	"context"
	"testing"

	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
	"github.com/pyleeai/pylee/services/orgs/internal/store/storetest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(context.Background(), dbtest.MigratedSQLiteURL(t, store.Migrate))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		url := dbtest.PostgresURL(t, "orgs", store.Migrate)
		s, err := store.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
