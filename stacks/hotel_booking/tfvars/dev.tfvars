# dev: functional testing, a handful of bookings per second. Same topology as staging and
# prod (replica regions, PMS integrations, functions, alarms); only capacity differs.
aws_region   = "us-west-2"
project_name = "global-booking"
environment  = "dev"
tags = {
  Owner              = "reservations-platform"
  CostCenter         = "bookings"
  DataClassification = "confidential"
}

# Network
vpc_cidr               = "10.60.0.0/16"
num_availability_zones = 2
public_subnet_cidrs    = ["10.60.0.0/24", "10.60.1.0/24"]
private_subnet_cidrs   = ["10.60.16.0/20", "10.60.32.0/20"]

# Booking API
booking_api_rate_limit_rps = 50
booking_api_burst_limit    = 100
max_nights                 = 14

# Inventory (global table)
dynamodb_table_name      = "inventory"
dynamodb_replica_regions = ["us-east-1", "eu-west-1"]
hold_ttl_seconds         = 900
booking_retention_days   = 400
deletion_protection      = true # the sandbox turns it off so `down` can destroy

# Functions
lambda_memory_mb = {
  booking_handler        = 256
  cache_updater          = 256
  pms_sync_worker        = 256
  reconciliation_checker = 256
  overbooking_resolver   = 256
}
lambda_timeout_seconds = 30

# Cache: one small node (no failover)
cache_node_type   = "cache.t4g.micro"
cache_num_nodes   = 1
cache_ttl_seconds = 900

# PMS integrations: the vendors' integration gateways (API keys in Secrets Manager)
pms_integrations = {
  opera = { endpoint_url = "https://opera.pms-gateway.global-booking.net/v1", max_concurrency = 2 }
  mews  = { endpoint_url = "https://mews.pms-gateway.global-booking.net/v1", max_concurrency = 2 }
}
pms_queue_visibility_timeout_seconds = 180
pms_max_retries                      = 3
pms_backoff_base_ms                  = 200
circuit_failure_threshold            = 5
circuit_open_seconds                 = 30
pms_max_receive_count                = 20

# Reconciliation
reconciliation_schedule_expression = "rate(5 minutes)"
reconciliation_window_seconds      = 600
replication_lag_alarm_ms           = 10000

# Aurora audit store
db_name               = "bookings"
master_username       = "bookingadmin"
aurora_min_capacity   = 0.5
aurora_max_capacity   = 2
backup_retention_days = 1

# Observability and secrets
log_retention_days          = 365
secret_recovery_window_days = 7
