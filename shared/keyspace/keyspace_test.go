package keyspace_test

import (
	"testing"

	"flashedge/shared/keyspace"
)

// TestKeys pins every key format: a change here is a data migration, not a refactor.
func TestKeys(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"Product", keyspace.Product("42"), "fe:product:{p:42}"},
		{"ProductStock", keyspace.ProductStock("42"), "fe:product:{p:42}:stock"},
		{"ProductIndex", keyspace.ProductIndex(), "fe:products"},
		{"ProductSeq", keyspace.ProductSeq(), "fe:seq:product"},
		{"Cart", keyspace.Cart("alice"), "fe:cart:{u:alice}"},
		{"Order", keyspace.Order("alice", "7"), "fe:order:{u:alice}:7"},
		{"UserOrders", keyspace.UserOrders("alice"), "fe:orders:{u:alice}"},
		{"OrderSeq", keyspace.OrderSeq(), "fe:seq:order"},
		{"Idempotency", keyspace.Idempotency("alice", "checkout", "k1"), "fe:idem:{u:alice}:checkout:k1"},
		{"Sale", keyspace.Sale("s1"), "fe:sale:{s:s1}"},
		{"Sales", keyspace.Sales(), "fe:sales"},
		{"SaleShards", keyspace.SaleShards("s1"), "fe:sale:{s:s1}:shards"},
		{"StockShard", keyspace.StockShard("s1", 3), "fe:salestock:{s:s1:3}"},
		{"SoldOut", keyspace.SoldOut("s1"), "fe:sale:{s:s1}:soldout"},
		{"SaleStats", keyspace.SaleStats("s1"), "fe:sale:{s:s1}:stats"},
		{"SaleUsers", keyspace.SaleUsers("s1"), "fe:sale:{s:s1}:users"},
		{"SaleResult", keyspace.SaleResult("s1", "t9"), "fe:sale:{s:s1}:result:t9"},
		{"SaleToken", keyspace.SaleToken("s1", "tok"), "fe:sale:{s:s1}:token:tok"},
		{"SaleDeadlines", keyspace.SaleDeadlines("s1"), "fe:sale:{s:s1}:deadlines"},
		{"AttemptStream", keyspace.AttemptStream(), "fe:stream:attempts"},
		{"Blacklist", keyspace.Blacklist("user", "bob"), "fe:bl:user:{bob}"},
		{"SaleClaim", keyspace.SaleClaim("s1"), "fe:sale:{s:s1}:claim"},
		{"SaleChallenge", keyspace.SaleChallenge("s1", "c1"), "fe:sale:{s:s1}:challenge:c1"},
		{"SaleIdempotency", keyspace.SaleIdempotency("s1", "alice", "k1"), "fe:sale:{s:s1}:idem:alice:k1"},
		{"SaleInflight", keyspace.SaleInflight("s1"), "fe:sale:{s:s1}:inflight"},
		{"SaleQueue", keyspace.SaleQueue("s1"), "fe:sale:{s:s1}:queue"},
		{"ShardClaims", keyspace.ShardClaims("s1", 3), "fe:salestock:{s:s1:3}:claims"},
		{"ShardStats", keyspace.ShardStats("s1", 3), "fe:salestock:{s:s1:3}:stats"},
		{"LiveSales", keyspace.LiveSales(), "fe:sales:live"},
		{"LiveSalesIndexed", keyspace.LiveSalesIndexed(), "fe:sales:live:indexed"},
		{"SaleClosing", keyspace.SaleClosing("s1"), "fe:sale:{s:s1}:closing"},
		{"CatalogSeedLock", keyspace.CatalogSeedLock(), "fe:lock:catalog-seed"},
		{"WaitRoom", keyspace.WaitRoom("s1"), "fe:sale:{s:s1}:wr"},
		{"WaitRoomSeed", keyspace.WaitRoomSeed("s1"), "fe:sale:{s:s1}:wr:seed"},
		{"WaitRoomPre", keyspace.WaitRoomPre("s1"), "fe:sale:{s:s1}:wr:pre"},
		{"WaitRoomTail", keyspace.WaitRoomTail("s1"), "fe:sale:{s:s1}:wr:tail"},
		{"WaitRoomPlace", keyspace.WaitRoomPlace("s1"), "fe:sale:{s:s1}:wr:place"},
		{"WaitRoomPass", keyspace.WaitRoomPass("s1"), "fe:sale:{s:s1}:wr:pass"},
		{"WaitRoomLost", keyspace.WaitRoomLost("s1"), "fe:sale:{s:s1}:wr:lost"},
		{"WaitRoomSeen", keyspace.WaitRoomSeen("s1"), "fe:sale:{s:s1}:wr:seen"},
		{"WaitRoomUsed", keyspace.WaitRoomUsed("s1"), "fe:sale:{s:s1}:wr:used"},
		{"WaitRoomBatches", keyspace.WaitRoomBatches("s1"), "fe:sale:{s:s1}:wr:batches"},
		{"WaitRoomOrder", keyspace.WaitRoomOrder("s1"), "fe:sale:{s:s1}:wr:order"},
		{"WaitRoomLock", keyspace.WaitRoomLock("s1"), "fe:sale:{s:s1}:wr:lock"},
		{"WaitRooms", keyspace.WaitRooms(), "fe:waitrooms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
			}
		})
	}
}

func TestInverseParsers(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		parse  func(string) (string, bool)
		wantID string
		wantOK bool
	}{
		{"product", keyspace.Product("p1"), keyspace.ProductOf, "p1", true},
		{"product stock", keyspace.ProductStock("p1"), keyspace.ProductOf, "p1", true},
		{"product index is not a product", keyspace.ProductIndex(), keyspace.ProductOf, "", false},
		{"sale", keyspace.Sale("s1"), keyspace.SaleStateOf, "s1", true},
		{"sold-out flag", keyspace.SoldOut("s1"), keyspace.SaleStateOf, "s1", true},
		{"sale stats are not its state", keyspace.SaleStats("s1"), keyspace.SaleStateOf, "", false},
		{"stock shard is not a sale", keyspace.StockShard("s1", 0), keyspace.SaleStateOf, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := tt.parse(tt.key)
			if id != tt.wantID || ok != tt.wantOK {
				t.Errorf("parse(%q) = %q, %v; want %q, %v", tt.key, id, ok, tt.wantID, tt.wantOK)
			}
		})
	}
	if !keyspace.IsSaleIdempotency(keyspace.SaleIdempotency("s1", "alice", "k:1")) {
		t.Error("IsSaleIdempotency misses a SaleIdempotency key")
	}
	if keyspace.IsSaleIdempotency(keyspace.SaleResult("s1", "t")) {
		t.Error("IsSaleIdempotency takes a result key")
	}
}
