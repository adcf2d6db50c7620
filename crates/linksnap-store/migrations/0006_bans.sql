-- Addresses and ranges refused at accept. `net` is a CIDR in canonical form
-- (`192.0.2.7/32`, `2001:db8::/64`). Expired bans are ignored and swept.
CREATE TABLE bans (
    net TEXT PRIMARY KEY,
    reason TEXT NOT NULL DEFAULT '',
    -- 1: made by the server for a peer that kept hitting the per-address cap.
    automatic INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    -- NULL: until lifted.
    expires_at INTEGER
);
