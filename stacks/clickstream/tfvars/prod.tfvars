# prod: ~10,000 events/min at peak with no event loss. Same topology as staging and prod; only
# capacity differs.
aws_region    = "us-east-1"
project_name  = "clickstream"
environment   = "prod"
unique_suffix = "a1b2c3"
tags = {
  Owner      = "data-platform"
  CostCenter = "analytics"
}

# Toggles
enable_alb_access_logs     = true
enable_ssh_from_admin_cidr = false
ssh_allowed_cidr           = "10.0.0.0/24"

# Network: private subnets and NAT-only subnets in two zones
vpc_cidr                = "10.70.0.0/16"
availability_zone_count = 2

# Kinesis and the processor (peak ~167 events/s; one shard takes 1,000 records/s)
shard_count            = 2
stream_retention_hours = 168
processor_memory_mb    = 1024
insights_memory_mb     = 512
batch_size             = 500

# DynamoDB: each event writes two items (per user, per page)
table_min_write_capacity       = 100
table_max_write_capacity       = 2000
table_min_read_capacity        = 20
table_max_read_capacity        = 500
autoscaling_target_utilization = 70

# ALB and observability
alb_listener_port   = 80
log_retention_days  = 365
deletion_protection = true # the sandbox turns it off so `down` can destroy
