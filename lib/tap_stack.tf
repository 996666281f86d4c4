###############################################################################
# tap_stack.tf: video streaming user-activity pipeline, one topology for
# dev, staging and prod.
#
# Data flow (the file is ordered the same way):
#   API Gateway (POST /watch /pause /complete)
#     -> event_processor Lambda -> Kinesis viewing-events stream
#        -> activity_consumer  (tumbling window) -> DynamoDB user_activity (+ raw/ in S3)
#           -> DynamoDB stream -> recommendations (Redis + SageMaker) -> user_recommendations
#        -> completion_detector (filter: complete) -> SNS watched-complete (FIFO)
#           -> SQS analytics (FIFO)    -> analytics_consumer    -> Aurora content_stats
#           -> SQS achievements (FIFO) -> achievements_consumer -> user_achievements
#                                                               -> SNS user-notifications
#   EventBridge (nightly) -> Step Functions: find -> [mark | purge | archive]
#   S3 thumbnails uploads/ -> thumbnail_validator -> content_catalog
#
# Parity rule: every resource address exists in every environment. Only the
# capacity knobs listed in the spec ("Allowed to differ") change between the
# three tfvars files; they reach resources through variables and through
# local.capacity (the per-env capacity map below).
###############################################################################

# -----------------------------------------------------------------------------
# Terraform and providers (provider configuration lives in provider.tf)
# -----------------------------------------------------------------------------
terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
  }
}

# -----------------------------------------------------------------------------
# Variables: environment and ownership
# -----------------------------------------------------------------------------
variable "env" {
  description = "Deployment environment; part of every resource name."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.env)
    error_message = "env must be one of dev, staging, prod."
  }
}

variable "aws_region" {
  description = "AWS region the provider (provider.tf) deploys to."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region code such as us-east-1."
  }
}

variable "project_name" {
  description = "Short project name, first part of every resource name (lowercase, 2-16 characters, hyphens allowed between words)."
  type        = string
  default     = "tap"

  validation {
    condition     = length(var.project_name) >= 2 && length(var.project_name) <= 16 && can(regex("^[a-z][a-z0-9]*(-[a-z0-9]+)*$", var.project_name))
    error_message = "project_name must be 2-16 lowercase letters, digits or single hyphens, start with a letter and not end with a hyphen."
  }
}

variable "owner" {
  description = "Team or person owning the stack (Owner tag)."
  type        = string
  default     = "platform-team"

  validation {
    condition     = length(trimspace(var.owner)) > 0 && length(var.owner) <= 128 && can(regex("^[\\p{L}\\p{Z}\\p{N}_.:/=+@-]+$", var.owner))
    error_message = "owner must be 1-128 characters allowed in AWS tag values (letters, digits, spaces and _ . : / = + - @)."
  }
}

variable "cost_center" {
  description = "Cost center the stack is billed to (CostCenter tag)."
  type        = string
  default     = "streaming-analytics"

  validation {
    condition     = length(trimspace(var.cost_center)) > 0 && length(var.cost_center) <= 128 && can(regex("^[\\p{L}\\p{Z}\\p{N}_.:/=+@-]+$", var.cost_center))
    error_message = "cost_center must be 1-128 characters allowed in AWS tag values (letters, digits, spaces and _ . : / = + - @)."
  }
}

variable "common_tags" {
  description = "Extra tags merged into every resource's tags (Project, Environment, Owner, CostCenter and ManagedBy are always set)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.common_tags : length(k) <= 128 && length(v) <= 256 && !startswith(lower(k), "aws:") && can(regex("^[\\p{L}\\p{Z}\\p{N}_.:/=+@-]+$", k)) && can(regex("^[\\p{L}\\p{Z}\\p{N}_.:/=+@-]*$", v))])
    error_message = "common_tags keys must be 1-128 and values 0-256 characters allowed in AWS tags (letters, digits, spaces and _ . : / = + - @), and no key may start with aws:."
  }
}

# -----------------------------------------------------------------------------
# Variables: VPC
# -----------------------------------------------------------------------------
variable "vpc_cidr" {
  description = "IPv4 CIDR block of the VPC."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be a valid IPv4 CIDR with a prefix length between /16 and /24."
  }
}

variable "public_subnet_cidrs" {
  description = "Public subnet CIDRs (NAT gateways only), one per availability zone; length must equal num_availability_zones."
  type        = list(string)
  default     = ["10.40.0.0/24", "10.40.1.0/24", "10.40.2.0/24"]

  validation {
    condition     = length(var.public_subnet_cidrs) >= 2 && length(var.public_subnet_cidrs) <= 6 && alltrue([for c in var.public_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "public_subnet_cidrs must hold 2-6 valid IPv4 CIDRs."
  }
}

variable "private_subnet_cidrs" {
  description = "Private subnet CIDRs (Lambda, Redis, Aurora, interface endpoints), one per availability zone; length must equal num_availability_zones."
  type        = list(string)
  default     = ["10.40.16.0/20", "10.40.32.0/20", "10.40.48.0/20"]

  validation {
    condition     = length(var.private_subnet_cidrs) >= 2 && length(var.private_subnet_cidrs) <= 6 && alltrue([for c in var.private_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "private_subnet_cidrs must hold 2-6 valid IPv4 CIDRs."
  }
}

variable "num_availability_zones" {
  description = "Number of availability zones to spread subnets, NAT gateways and interface endpoints over (2-6). Topology: keep it the same in every environment."
  type        = number
  default     = 3

  validation {
    condition     = var.num_availability_zones >= 2 && var.num_availability_zones <= 6 && floor(var.num_availability_zones) == var.num_availability_zones
    error_message = "num_availability_zones must be a whole number between 2 and 6."
  }
}

# -----------------------------------------------------------------------------
# Variables: API Gateway
# -----------------------------------------------------------------------------
variable "api_name" {
  description = "REST API name suffix (the API is named <project>-<env>-<api_name>)."
  type        = string
  default     = "viewing-api"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.api_name))
    error_message = "api_name must be 1-40 letters, digits, hyphens or underscores."
  }
}

variable "stage_name" {
  description = "API Gateway stage name (identical in every environment so the endpoint paths match)."
  type        = string
  default     = "v1"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,64}$", var.stage_name))
    error_message = "stage_name must be 1-64 letters, digits or underscores."
  }
}

variable "throttle_rate_limit" {
  description = "Steady-state requests per second allowed on every API method."
  type        = number
  default     = 100

  validation {
    condition     = var.throttle_rate_limit > 0 && var.throttle_rate_limit <= 100000
    error_message = "throttle_rate_limit must be greater than 0 and at most 100000."
  }
}

variable "throttle_burst_limit" {
  description = "Burst requests allowed on every API method."
  type        = number
  default     = 200

  validation {
    condition     = var.throttle_burst_limit > 0 && var.throttle_burst_limit <= 100000 && floor(var.throttle_burst_limit) == var.throttle_burst_limit
    error_message = "throttle_burst_limit must be a whole number greater than 0 and at most 100000."
  }
}

# -----------------------------------------------------------------------------
# Variables: Kinesis
# -----------------------------------------------------------------------------
variable "activity_stream_name" {
  description = "Kinesis stream name suffix for viewing events."
  type        = string
  default     = "viewing-events"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,64}$", var.activity_stream_name))
    error_message = "activity_stream_name must be 1-64 letters, digits, dots, hyphens or underscores."
  }
}

variable "stream_mode" {
  description = "Kinesis capacity mode: PROVISIONED (shard_count shards) or ON_DEMAND."
  type        = string
  default     = "PROVISIONED"

  validation {
    condition     = contains(["PROVISIONED", "ON_DEMAND"], var.stream_mode)
    error_message = "stream_mode must be PROVISIONED or ON_DEMAND."
  }
}

variable "shard_count" {
  description = "Kinesis shards when stream_mode is PROVISIONED (1 MB/s or 1000 records/s of writes per shard)."
  type        = number
  default     = 1

  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 500 && floor(var.shard_count) == var.shard_count
    error_message = "shard_count must be a whole number between 1 and 500."
  }
}

variable "retention_hours" {
  description = "Kinesis record retention in hours (24-8760)."
  type        = number
  default     = 24

  validation {
    condition     = var.retention_hours >= 24 && var.retention_hours <= 8760 && floor(var.retention_hours) == var.retention_hours
    error_message = "retention_hours must be a whole number between 24 and 8760."
  }
}

# -----------------------------------------------------------------------------
# Variables: DynamoDB
# -----------------------------------------------------------------------------
variable "activity_table" {
  description = "user_activity table name suffix (pk user_id, sk timestamp, stream enabled)."
  type        = string
  default     = "user_activity"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,100}$", var.activity_table))
    error_message = "activity_table must be 3-100 letters, digits, dots, hyphens or underscores."
  }
}

variable "recommendations_table" {
  description = "user_recommendations table name suffix (pk user_id, TTL on ttl_attribute)."
  type        = string
  default     = "user_recommendations"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,100}$", var.recommendations_table))
    error_message = "recommendations_table must be 3-100 letters, digits, dots, hyphens or underscores."
  }
}

variable "achievements_table" {
  description = "user_achievements table name suffix (pk user_id, sk badge_id)."
  type        = string
  default     = "user_achievements"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,100}$", var.achievements_table))
    error_message = "achievements_table must be 3-100 letters, digits, dots, hyphens or underscores."
  }
}

variable "catalog_table" {
  description = "content_catalog table name suffix (pk content_id)."
  type        = string
  default     = "content_catalog"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,100}$", var.catalog_table))
    error_message = "catalog_table must be 3-100 letters, digits, dots, hyphens or underscores."
  }
}

variable "billing_mode" {
  description = "DynamoDB billing mode for all four tables: PAY_PER_REQUEST or PROVISIONED (then rcu/wcu apply)."
  type        = string
  default     = "PAY_PER_REQUEST"

  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "rcu" {
  description = "Read capacity units per table when billing_mode is PROVISIONED (ignored otherwise)."
  type        = number
  default     = 5

  validation {
    condition     = var.rcu >= 1 && floor(var.rcu) == var.rcu
    error_message = "rcu must be a whole number of at least 1."
  }
}

variable "wcu" {
  description = "Write capacity units per table when billing_mode is PROVISIONED (ignored otherwise)."
  type        = number
  default     = 5

  validation {
    condition     = var.wcu >= 1 && floor(var.wcu) == var.wcu
    error_message = "wcu must be a whole number of at least 1."
  }
}

variable "ttl_attribute" {
  description = "Name of the epoch-seconds TTL attribute of user_recommendations."
  type        = string
  default     = "expires_at"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,254}$", var.ttl_attribute))
    error_message = "ttl_attribute must be 1-255 letters, digits or underscores and start with a letter or underscore."
  }
}

variable "recommendation_ttl_hours" {
  description = "Lifetime of a user's recommendations (DynamoDB TTL and Redis recs:{user_id}) in hours; the spec asks for 24."
  type        = number
  default     = 24

  validation {
    condition     = var.recommendation_ttl_hours >= 1 && var.recommendation_ttl_hours <= 168 && floor(var.recommendation_ttl_hours) == var.recommendation_ttl_hours
    error_message = "recommendation_ttl_hours must be a whole number between 1 and 168."
  }
}

variable "deletion_protection" {
  description = "Deletion protection for DynamoDB tables and the Aurora cluster. The same value in every environment keeps the topology identical; a throw-away sandbox passes false."
  type        = bool
  default     = true
}

# -----------------------------------------------------------------------------
# Variables: Lambda
# -----------------------------------------------------------------------------
variable "event_processor_memory" {
  description = "Memory (MB) of the ingest path: event_processor, activity_consumer and completion_detector."
  type        = number
  default     = 256

  validation {
    condition     = var.event_processor_memory >= 128 && var.event_processor_memory <= 10240 && floor(var.event_processor_memory) == var.event_processor_memory
    error_message = "event_processor_memory must be a whole number of MB between 128 and 10240."
  }
}

variable "recommendations_memory" {
  description = "Memory (MB) of the recommendations engine."
  type        = number
  default     = 512

  validation {
    condition     = var.recommendations_memory >= 128 && var.recommendations_memory <= 10240 && floor(var.recommendations_memory) == var.recommendations_memory
    error_message = "recommendations_memory must be a whole number of MB between 128 and 10240."
  }
}

variable "analytics_memory" {
  description = "Memory (MB) of the analytics consumer."
  type        = number
  default     = 256

  validation {
    condition     = var.analytics_memory >= 128 && var.analytics_memory <= 10240 && floor(var.analytics_memory) == var.analytics_memory
    error_message = "analytics_memory must be a whole number of MB between 128 and 10240."
  }
}

variable "achievements_memory" {
  description = "Memory (MB) of the achievements consumer."
  type        = number
  default     = 256

  validation {
    condition     = var.achievements_memory >= 128 && var.achievements_memory <= 10240 && floor(var.achievements_memory) == var.achievements_memory
    error_message = "achievements_memory must be a whole number of MB between 128 and 10240."
  }
}

variable "expiration_memory" {
  description = "Memory (MB) of the catalog-maintenance functions: the four content-expiration tasks and thumbnail_validator."
  type        = number
  default     = 256

  validation {
    condition     = var.expiration_memory >= 128 && var.expiration_memory <= 10240 && floor(var.expiration_memory) == var.expiration_memory
    error_message = "expiration_memory must be a whole number of MB between 128 and 10240."
  }
}

variable "timeout_s" {
  description = "Lambda timeout in seconds for every function (event_processor is capped at 29 s, the API Gateway integration limit)."
  type        = number
  default     = 30

  validation {
    condition     = var.timeout_s >= 1 && var.timeout_s <= 900 && floor(var.timeout_s) == var.timeout_s
    error_message = "timeout_s must be a whole number of seconds between 1 and 900."
  }
}

variable "runtime" {
  description = "Lambda runtime of every function and of the shared layer."
  type        = string
  default     = "python3.12"

  validation {
    condition     = can(regex("^python3\\.[0-9]+$", var.runtime))
    error_message = "runtime must be a python3.x Lambda runtime such as python3.12."
  }
}

# -----------------------------------------------------------------------------
# Variables: ElastiCache Redis
# -----------------------------------------------------------------------------
variable "node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.micro"

  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.node_type))
    error_message = "node_type must be an ElastiCache node type such as cache.t4g.micro."
  }
}

variable "num_cache_clusters" {
  description = "Redis nodes (primary + replicas) in the replication group; failover and Multi-AZ turn on from 2."
  type        = number
  default     = 1

  validation {
    condition     = var.num_cache_clusters >= 1 && var.num_cache_clusters <= 6 && floor(var.num_cache_clusters) == var.num_cache_clusters
    error_message = "num_cache_clusters must be a whole number between 1 and 6."
  }
}

variable "engine_version" {
  description = "Redis engine version (7.x; the parameter group family is redis7)."
  type        = string
  default     = "7.1"

  validation {
    condition     = can(regex("^7\\.[0-9]+$", var.engine_version))
    error_message = "engine_version must be a Redis 7.x version such as 7.1."
  }
}

variable "auth_token_enabled" {
  description = "Require the Redis AUTH token (stored in Secrets Manager). Transit encryption is always on."
  type        = bool
  default     = true
}

# -----------------------------------------------------------------------------
# Variables: Aurora PostgreSQL Serverless v2
# -----------------------------------------------------------------------------
variable "db_name" {
  description = "Initial database name of the Aurora cluster."
  type        = string
  default     = "streaming"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must start with a letter and hold at most 63 letters, digits or underscores."
  }
}

variable "master_username" {
  description = "Aurora master user name (its password is generated into Secrets Manager)."
  type        = string
  default     = "tapadmin"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_]{0,15}$", var.master_username)) && !contains(["admin", "postgres", "rdsadmin", "root"], lower(var.master_username))
    error_message = "master_username must start with a letter, hold at most 16 letters, digits or underscores, and not be a reserved name (admin, postgres, rdsadmin, root)."
  }
}

variable "instance_class" {
  description = "Aurora instance class; db.serverless for Serverless v2."
  type        = string
  default     = "db.serverless"

  validation {
    condition     = can(regex("^db\\.[a-z0-9.]+$", var.instance_class))
    error_message = "instance_class must be an RDS instance class such as db.serverless."
  }
}

variable "min_capacity" {
  description = "Aurora Serverless v2 minimum capacity in ACUs (0.5-256)."
  type        = number
  default     = 0.5

  validation {
    condition     = var.min_capacity >= 0.5 && var.min_capacity <= 256 && floor(var.min_capacity * 2) == var.min_capacity * 2
    error_message = "min_capacity must be between 0.5 and 256 in steps of 0.5."
  }
}

variable "max_capacity" {
  description = "Aurora Serverless v2 maximum capacity in ACUs (0.5-256, not below min_capacity)."
  type        = number
  default     = 2

  validation {
    condition     = var.max_capacity >= 0.5 && var.max_capacity <= 256 && floor(var.max_capacity * 2) == var.max_capacity * 2
    error_message = "max_capacity must be between 0.5 and 256 in steps of 0.5."
  }
}

variable "backup_retention_days" {
  description = "Aurora automated backup retention in days (1-35)."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35 && floor(var.backup_retention_days) == var.backup_retention_days
    error_message = "backup_retention_days must be a whole number between 1 and 35."
  }
}

variable "preferred_maintenance_window" {
  description = "Weekly maintenance window (UTC, ddd:hh24:mi-ddd:hh24:mi); must not overlap the 03:00-04:00 backup window."
  type        = string
  default     = "sun:05:00-sun:06:00"

  validation {
    condition     = can(regex("^(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]$", var.preferred_maintenance_window))
    error_message = "preferred_maintenance_window must look like sun:05:00-sun:06:00."
  }
}

# -----------------------------------------------------------------------------
# Variables: SageMaker
# -----------------------------------------------------------------------------
variable "recommendations_endpoint_name" {
  description = "Name of the existing SageMaker real-time endpoint (owned by the ML team) that ranks recommendation candidates."
  type        = string
  default     = "tap-recommendations"

  validation {
    condition     = can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", var.recommendations_endpoint_name))
    error_message = "recommendations_endpoint_name must be a SageMaker endpoint name: 1-63 letters, digits or hyphens, not starting or ending with a hyphen."
  }
}

# -----------------------------------------------------------------------------
# Variables: SNS
# -----------------------------------------------------------------------------
variable "complete_topic" {
  description = "watched-complete topic name suffix (FIFO; .fifo is appended)."
  type        = string
  default     = "watched-complete"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.complete_topic))
    error_message = "complete_topic must be 1-40 letters, digits, hyphens or underscores (without .fifo)."
  }
}

variable "notifications_topic" {
  description = "user-notifications topic name suffix."
  type        = string
  default     = "user-notifications"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.notifications_topic))
    error_message = "notifications_topic must be 1-40 letters, digits, hyphens or underscores."
  }
}

# -----------------------------------------------------------------------------
# Variables: SQS
# -----------------------------------------------------------------------------
variable "analytics_queue_name" {
  description = "Analytics queue name suffix (FIFO; .fifo is appended; the DLQ adds -dlq)."
  type        = string
  default     = "analytics"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.analytics_queue_name))
    error_message = "analytics_queue_name must be 1-40 letters, digits, hyphens or underscores (without .fifo)."
  }
}

variable "achievements_queue_name" {
  description = "Achievements queue name suffix (FIFO with content-based deduplication; .fifo is appended; the DLQ adds -dlq)."
  type        = string
  default     = "achievements"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.achievements_queue_name))
    error_message = "achievements_queue_name must be 1-40 letters, digits, hyphens or underscores (without .fifo)."
  }
}

variable "visibility_timeout_seconds" {
  description = "Visibility timeout of the consumer queues in seconds (0-43200; must be at least timeout_s, AWS recommends 6x)."
  type        = number
  default     = 360

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200 && floor(var.visibility_timeout_seconds) == var.visibility_timeout_seconds
    error_message = "visibility_timeout_seconds must be a whole number between 0 and 43200."
  }
}

variable "message_retention_seconds" {
  description = "Message retention of the consumer queues in seconds (60-1209600); DLQs always keep 14 days."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600 && floor(var.message_retention_seconds) == var.message_retention_seconds
    error_message = "message_retention_seconds must be a whole number between 60 and 1209600."
  }
}

# -----------------------------------------------------------------------------
# Variables: EventBridge
# -----------------------------------------------------------------------------
variable "expiration_schedule_expression" {
  description = "Schedule of the content-expiration state machine, rate(...) or cron(...) (UTC)."
  type        = string
  default     = "cron(0 3 * * ? *)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.expiration_schedule_expression))
    error_message = "expiration_schedule_expression must be rate(...) or cron(...), e.g. cron(0 3 * * ? *)."
  }
}

variable "cache_refresh_schedule_expression" {
  description = "Schedule of the recommendation-cache refresh (Aurora catalogue and co-viewing -> Redis content:* and cf:*), rate(...) or cron(...) (UTC)."
  type        = string
  default     = "rate(1 hour)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.cache_refresh_schedule_expression))
    error_message = "cache_refresh_schedule_expression must be rate(...) or cron(...), e.g. rate(1 hour)."
  }
}

# -----------------------------------------------------------------------------
# Variables: S3 and Athena
# -----------------------------------------------------------------------------
variable "archive_bucket_name" {
  description = "Archive bucket name part; the bucket is <project>-<env>-<archive_bucket_name>-<account id>."
  type        = string
  default     = "archive"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,18}[a-z0-9]$", var.archive_bucket_name)) && !strcontains(var.archive_bucket_name, "--")
    error_message = "archive_bucket_name must be 3-20 lowercase letters, digits or single hyphens, starting and ending with a letter or digit."
  }
}

variable "thumbnails_bucket_name" {
  description = "Thumbnails bucket name part; the bucket is <project>-<env>-<thumbnails_bucket_name>-<account id>."
  type        = string
  default     = "thumbnails"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,18}[a-z0-9]$", var.thumbnails_bucket_name)) && !strcontains(var.thumbnails_bucket_name, "--")
    error_message = "thumbnails_bucket_name must be 3-20 lowercase letters, digits or single hyphens, starting and ending with a letter or digit."
  }
}

variable "lifecycle_glacier_days" {
  description = "Days after which archived viewing data moves from Intelligent-Tiering to Glacier Flexible Retrieval."
  type        = number
  default     = 90

  validation {
    condition     = var.lifecycle_glacier_days >= 1 && floor(var.lifecycle_glacier_days) == var.lifecycle_glacier_days
    error_message = "lifecycle_glacier_days must be a whole number of at least 1."
  }
}

variable "workgroup_name" {
  description = "Athena workgroup name suffix."
  type        = string
  default     = "analytics"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,40}$", var.workgroup_name))
    error_message = "workgroup_name must be 1-40 letters, digits, dots, hyphens or underscores."
  }
}

variable "output_bucket" {
  description = "Athena query-results bucket name part; the bucket is <project>-<env>-<output_bucket>-<account id>."
  type        = string
  default     = "athena-results"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,18}[a-z0-9]$", var.output_bucket)) && !strcontains(var.output_bucket, "--")
    error_message = "output_bucket must be 3-20 lowercase letters, digits or single hyphens, starting and ending with a letter or digit."
  }
}

# -----------------------------------------------------------------------------
# Variables: CloudWatch and Secrets Manager
# -----------------------------------------------------------------------------
variable "log_retention_days" {
  description = "Retention of every log group, in days (one of CloudWatch Logs' allowed values)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' allowed values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "alarm_latency_threshold" {
  description = "API Gateway p95 latency (ms) above which the latency alarm fires."
  type        = number
  default     = 1000

  validation {
    condition     = var.alarm_latency_threshold > 0 && var.alarm_latency_threshold <= 29000
    error_message = "alarm_latency_threshold must be greater than 0 and at most 29000 ms (the API Gateway integration timeout)."
  }
}

variable "secret_recovery_window_days" {
  description = "Recovery window of the Secrets Manager secrets when destroyed: 0 (delete at once, for throw-away sandboxes) or 7-30."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30 && floor(var.secret_recovery_window_days) == var.secret_recovery_window_days)
    error_message = "secret_recovery_window_days must be 0 or a whole number between 7 and 30."
  }
}

# -----------------------------------------------------------------------------
# Data sources: account, partition, region, zones, Lambda packages, secrets
# -----------------------------------------------------------------------------
data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  state = "available"

  # Regular zones only (no Local/Wavelength zones, which lack most services).
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

# One zip per package directory under lib/lambdas (contract.md, "Functions").
# The four content-expiration functions share the content_expiration package.
data "archive_file" "lambda_package" {
  for_each = local.lambda_packages

  type             = "zip"
  source_dir       = "${path.module}/lambdas/${each.key}"
  output_path      = "${path.module}/.build/${each.key}.zip"
  output_file_mode = "0644"
  excludes         = ["__pycache__", "**/__pycache__/**", "**/*.pyc"]
}

# The shared layer (aws-lambda-powertools, redis, pg8000, tap_common) is built into
# lib/.build/layer/python by `make setup`; zipping it here makes its hash part of the plan.
data "archive_file" "layer" {
  type             = "zip"
  source_dir       = "${path.module}/.build/layer"
  output_path      = "${path.module}/.build/layer.zip"
  output_file_mode = "0644"
  excludes         = ["**/__pycache__/**", "**/*.pyc"]
}

# Secrets are generated by Secrets Manager itself (no random provider). The data
# source returns a new value on every read, so the secret versions (and the Aurora
# master password) ignore later changes: the first value stays until someone
# rotates it on purpose. depends_on defers the first read to apply time, so a
# plan of a new environment never carries a generated secret (and the plans of
# dev, staging and prod stay comparable).
data "aws_secretsmanager_random_password" "redis_auth" {
  password_length     = 64
  exclude_punctuation = true # Redis AUTH forbids @, " and / among others
  include_space       = false

  depends_on = [aws_secretsmanager_secret.this]
}

data "aws_secretsmanager_random_password" "aurora_master" {
  password_length     = 40
  exclude_punctuation = true # RDS forbids /, @, " and spaces in master passwords
  include_space       = false

  depends_on = [aws_secretsmanager_secret.this]
}

# -----------------------------------------------------------------------------
# Locals: names, tags, per-env capacity, Lambda definitions and environment
# -----------------------------------------------------------------------------
locals {
  name_prefix = "${var.project_name}-${var.env}"
  account_id  = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.name

  common_tags = merge(var.common_tags, {
    Project     = var.project_name
    Environment = var.env
    Owner       = var.owner
    CostCenter  = var.cost_center
    ManagedBy   = "terraform"
  })

  # One entry per availability zone, keyed az1..azN so that addresses never depend
  # on zone names. Missing list entries become null and are caught by preconditions.
  azs = {
    for i in range(var.num_availability_zones) : format("az%d", i + 1) => {
      name         = try(data.aws_availability_zones.available.names[i], null)
      public_cidr  = try(var.public_subnet_cidrs[i], null)
      private_cidr = try(var.private_subnet_cidrs[i], null)
    }
  }

  # Deterministic names, all within AWS limits for a 16-character project name:
  # Lambda <= 64, IAM role <= 64, replication group <= 40, S3 <= 63, SQS FIFO ends .fifo.
  names = {
    api              = "${local.name_prefix}-${var.api_name}"
    stream           = "${local.name_prefix}-${var.activity_stream_name}"
    redis            = "${local.name_prefix}-redis"
    aurora           = "${local.name_prefix}-aurora"
    state_machine    = "${local.name_prefix}-content-expiration"
    schedule_rule    = "${local.name_prefix}-nightly-expiration"
    refresh_rule     = "${local.name_prefix}-cache-refresh"
    layer            = "${local.name_prefix}-common"
    athena_workgroup = "${local.name_prefix}-${var.workgroup_name}"
    glue_database    = replace("${local.name_prefix}_viewing", "-", "_")
    redis_secret     = "${local.name_prefix}/redis/auth"
    aurora_secret    = "${local.name_prefix}/aurora/master"
  }

  table_names = {
    activity        = "${local.name_prefix}-${var.activity_table}"
    recommendations = "${local.name_prefix}-${var.recommendations_table}"
    achievements    = "${local.name_prefix}-${var.achievements_table}"
    catalog         = "${local.name_prefix}-${var.catalog_table}"
  }

  # Bucket names are global: the account id makes them unique and still deterministic.
  bucket_names = {
    archive        = "${local.name_prefix}-${var.archive_bucket_name}-${local.account_id}"
    thumbnails     = "${local.name_prefix}-${var.thumbnails_bucket_name}-${local.account_id}"
    athena_results = "${local.name_prefix}-${var.output_bucket}-${local.account_id}"
  }

  topic_names = {
    complete      = "${local.name_prefix}-${var.complete_topic}.fifo"
    notifications = "${local.name_prefix}-${var.notifications_topic}"
    alarms        = "${local.name_prefix}-alarms"
  }

  function_names = { for k in keys(local.lambda_functions) : k => "${local.name_prefix}-${replace(k, "_", "-")}" }
  function_arns  = { for k, name in local.function_names : k => "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${name}" }

  # Constants of the event flow. They are the same in every environment on purpose:
  # the spec forbids different event flows or recommendation logic between envs.
  flow = {
    raw_prefix                    = "raw/"
    archive_prefix                = "viewing/"
    thumbnail_prefix              = "uploads/"
    raw_table                     = "raw_viewing_events"
    full_completion_ratio         = "0.9"
    top_n                         = "10"
    max_thumbnail_bytes           = "5242880"
    log_level                     = "INFO"
    kinesis_tumbling_window_s     = 30   # aggregation window of activity_consumer
    stream_max_retry_attempts     = 5    # then the batch goes to stream_failures
    stream_max_record_age_s       = 3600 # older records go to stream_failures
    stream_batching_window_s      = 1
    kinesis_batch_size            = 200 # per shard; concurrency = shards x parallelization
    kinesis_parallelization       = 2
    ddb_stream_batch_size         = 100
    ddb_stream_parallelization    = 2
    sqs_maximum_concurrency       = 10 # cap per queue (FIFO order is kept per user_id anyway)
    sqs_batch_size                = 10 # FIFO queues allow at most 10
    dlq_retention_s               = 1209600
    dlq_max_receive_count         = 5
    sfn_task_timeout_s            = 900  # >= the largest Lambda timeout, so the definition never varies
    sfn_execution_timeout_s       = 3600 # the whole nightly run
    expiration_lookback_days      = 7    # licences expired this recently are (re)processed: a missed night catches up
    archive_poll_s                = 5    # between checks of the archive query's state
    archive_noncurrent_days       = 90
    thumbnails_noncurrent_days    = 30
    athena_results_expire_days    = 30
    multipart_abort_days          = 7
    athena_bytes_scanned_cutoff   = 10737418240 # 10 GiB per query
    alarm_period_s                = 300
    alarm_evaluation_periods      = 3
    alarm_datapoints_to_alarm     = 2
    redis_port                    = 6379
    aurora_port                   = 5432
    aurora_engine_version         = "16.6"
    aurora_parameter_family       = "aurora-postgresql16"
    aurora_backup_window          = "03:00-04:00"
    redis_snapshot_window         = "02:00-03:00"
    redis_snapshot_retention_days = 7
    # Recommendation cache (cache_refresh -> Redis; schema in lambdas/cache_refresh/cachekeys.py).
    cache_ttl_s          = 86400 # content:* and cf:* outlive many missed refreshes
    neighbours_per_title = 50    # members of each cf:{id}
    co_view_window_days  = 90    # co-viewing older than this no longer counts
    viewer_titles        = 50    # most recent titles per viewer in the pair join
    min_co_viewers       = 2     # a pair seen by one viewer is noise, not similarity
  }

  # Per-environment capacity map: the alarm thresholds that scale with each
  # environment's traffic (the other capacities come from the tfvars files).
  # Stream/queue batching and per-shard parallelism are part of the event flow
  # and identical everywhere (local.flow); throughput scales with the shard count.
  env_capacity = {
    dev = {
      alarm_recommendations_p95_ms    = 10000
      alarm_activity_throttle_events  = 50
      alarm_kinesis_read_throttled    = 50
      alarm_redis_fragmentation_ratio = 1.5
      alarm_aurora_db_load            = 2
      alarm_sqs_oldest_message_s      = 1800
      alarm_sfn_executions_failed     = 1
      alarm_dlq_visible_messages      = 1
    }
    staging = {
      alarm_recommendations_p95_ms    = 6000
      alarm_activity_throttle_events  = 25
      alarm_kinesis_read_throttled    = 25
      alarm_redis_fragmentation_ratio = 1.5
      alarm_aurora_db_load            = 4
      alarm_sqs_oldest_message_s      = 900
      alarm_sfn_executions_failed     = 1
      alarm_dlq_visible_messages      = 1
    }
    prod = {
      alarm_recommendations_p95_ms    = 3000
      alarm_activity_throttle_events  = 10
      alarm_kinesis_read_throttled    = 10
      alarm_redis_fragmentation_ratio = 1.5
      alarm_aurora_db_load            = 12
      alarm_sqs_oldest_message_s      = 300
      alarm_sfn_executions_failed     = 1
      alarm_dlq_visible_messages      = 1
    }
  }
  capacity = local.env_capacity[var.env]

  # The twelve functions of contract.md. Memory variables map to functions by role:
  # event_processor_memory covers the whole ingest path (API handler and both
  # Kinesis consumers); expiration_memory covers catalog maintenance (the four
  # expiration tasks and the thumbnail validator).
  lambda_functions = {
    event_processor = {
      package     = "event_processor"
      handler     = "handler.lambda_handler"
      memory      = var.event_processor_memory
      timeout     = min(var.timeout_s, 29) # API Gateway gives up after 29 s anyway
      description = "POST /watch /pause /complete: validates the viewing event and writes it to Kinesis."
    }
    activity_consumer = {
      package     = "activity_consumer"
      handler     = "handler.lambda_handler"
      memory      = var.event_processor_memory
      timeout     = var.timeout_s
      description = "Kinesis consumer: aggregates events per user and updates user_activity (progress, last_viewed); lands raw events in S3."
    }
    completion_detector = {
      package     = "completion_detector"
      handler     = "handler.lambda_handler"
      memory      = var.event_processor_memory
      timeout     = var.timeout_s
      description = "Kinesis consumer for complete events: publishes completions to the watched-complete FIFO topic."
    }
    recommendations = {
      package     = "recommendations"
      handler     = "handler.lambda_handler"
      memory      = var.recommendations_memory
      timeout     = var.timeout_s
      description = "DynamoDB stream consumer: ranks candidates (Redis CF + SageMaker) and writes the top 10 to user_recommendations."
    }
    analytics_consumer = {
      package     = "analytics_consumer"
      handler     = "handler.lambda_handler"
      memory      = var.analytics_memory
      timeout     = var.timeout_s
      description = "SQS consumer: aggregates completions per content_id into Aurora content_stats."
    }
    achievements_consumer = {
      package     = "achievements_consumer"
      handler     = "handler.lambda_handler"
      memory      = var.achievements_memory
      timeout     = var.timeout_s
      description = "SQS consumer: awards milestone badges and notifies users."
    }
    cache_refresh = {
      package     = "cache_refresh"
      handler     = "handler.lambda_handler"
      memory      = var.analytics_memory
      timeout     = var.timeout_s
      description = "Scheduled: item-to-item similarity and catalogue metadata from Aurora into the Redis recommendation cache (content:*, cf:*)."
    }
    expiration_find = {
      package     = "content_expiration"
      handler     = "handler.find_expired"
      memory      = var.expiration_memory
      timeout     = var.timeout_s
      description = "Step Functions task: finds content whose license expired (Aurora)."
    }
    expiration_mark = {
      package     = "content_expiration"
      handler     = "handler.mark_expired"
      memory      = var.expiration_memory
      timeout     = var.timeout_s
      description = "Step Functions task: flags expired content in content_catalog."
    }
    expiration_purge = {
      package     = "content_expiration"
      handler     = "handler.purge_cache"
      memory      = var.expiration_memory
      timeout     = var.timeout_s
      description = "Step Functions task: removes expired content from the Redis recommendation cache."
    }
    expiration_archive = {
      package     = "content_expiration"
      handler     = "handler.archive_views"
      memory      = var.expiration_memory
      timeout     = var.timeout_s
      description = "Step Functions task: archives viewing data of expired content to S3 with an Athena CTAS query."
    }
    thumbnail_validator = {
      package     = "thumbnail_validator"
      handler     = "handler.lambda_handler"
      memory      = var.expiration_memory
      timeout     = var.timeout_s
      description = "S3 uploads/ trigger: validates thumbnails and records the result in content_catalog."
    }
  }

  lambda_packages = toset([for f in values(local.lambda_functions) : f.package])

  # Environment common to every function (contract.md, "Environment variables").
  lambda_common_env = {
    ENV                   = var.env
    PROJECT               = var.project_name
    LOG_LEVEL             = local.flow.log_level
    ACTIVITY_TABLE        = local.table_names.activity
    RECOMMENDATIONS_TABLE = local.table_names.recommendations
    ACHIEVEMENTS_TABLE    = local.table_names.achievements
    CATALOG_TABLE         = local.table_names.catalog
  }

  redis_env = {
    REDIS_HOST            = aws_elasticache_replication_group.cache.primary_endpoint_address
    REDIS_PORT            = tostring(local.flow.redis_port)
    REDIS_AUTH_SECRET_ARN = aws_secretsmanager_secret.this["redis"].arn
    REDIS_TLS             = "true"
  }

  db_env = {
    DB_SECRET_ARN = aws_secretsmanager_secret.this["aurora"].arn
    DB_HOST       = aws_rds_cluster.aurora.endpoint
    DB_PORT       = tostring(local.flow.aurora_port)
    DB_NAME       = var.db_name
  }

  # Per-function additions; handlers read nothing else.
  lambda_function_env = {
    event_processor = {
      STREAM_NAME = aws_kinesis_stream.activity.name
    }
    # FULL_COMPLETION_RATIO goes to the functions that count completions: progress,
    # recommendation signals and completion statistics.
    # ACHIEVEMENTS_QUEUE_URL: where a crossed watch-time badge threshold is announced.
    activity_consumer = {
      RAW_BUCKET             = aws_s3_bucket.this["archive"].id
      RAW_PREFIX             = local.flow.raw_prefix
      FULL_COMPLETION_RATIO  = local.flow.full_completion_ratio
      ACHIEVEMENTS_QUEUE_URL = aws_sqs_queue.consumer["achievements"].url
    }
    completion_detector = {
      COMPLETE_TOPIC_ARN = aws_sns_topic.this["complete"].arn
    }
    recommendations = merge(local.redis_env, {
      SAGEMAKER_ENDPOINT       = var.recommendations_endpoint_name
      RECOMMENDATION_TTL_HOURS = tostring(var.recommendation_ttl_hours)
      TTL_ATTRIBUTE            = var.ttl_attribute
      TOP_N                    = local.flow.top_n
      FULL_COMPLETION_RATIO    = local.flow.full_completion_ratio
    })
    # processed_events keeps an event id as long as its message could still be delivered again:
    # its time on the analytics queue plus its time on the dead-letter queue (then redriven).
    analytics_consumer = merge(local.db_env, {
      FULL_COMPLETION_RATIO           = local.flow.full_completion_ratio
      PROCESSED_EVENTS_RETENTION_DAYS = tostring(ceil((var.message_retention_seconds + local.flow.dlq_retention_s) / 86400))
    })
    achievements_consumer = {
      NOTIFICATIONS_TOPIC_ARN = aws_sns_topic.this["notifications"].arn
    }
    cache_refresh = merge(local.db_env, local.redis_env, {
      CACHE_TTL_SECONDS    = tostring(local.flow.cache_ttl_s)
      NEIGHBOURS_PER_TITLE = tostring(local.flow.neighbours_per_title)
      CO_VIEW_WINDOW_DAYS  = tostring(local.flow.co_view_window_days)
      VIEWER_TITLES        = tostring(local.flow.viewer_titles)
      MIN_CO_VIEWERS       = tostring(local.flow.min_co_viewers)
    })
    expiration_find = merge(local.db_env, {
      EXPIRATION_LOOKBACK_DAYS = tostring(local.flow.expiration_lookback_days)
    })
    expiration_mark  = {}
    expiration_purge = local.redis_env
    expiration_archive = {
      ATHENA_WORKGROUP = aws_athena_workgroup.this.name
      GLUE_DATABASE    = aws_glue_catalog_database.viewing.name
      RAW_TABLE        = aws_glue_catalog_table.raw_viewing_events.name
      ARCHIVE_BUCKET   = aws_s3_bucket.this["archive"].id
      ARCHIVE_PREFIX   = local.flow.archive_prefix
    }
    thumbnail_validator = {
      THUMBNAILS_BUCKET   = aws_s3_bucket.this["thumbnails"].id
      MAX_THUMBNAIL_BYTES = local.flow.max_thumbnail_bytes
    }
  }

  lambda_environment = {
    for k in keys(local.lambda_functions) : k => merge(
      local.lambda_common_env,
      { POWERTOOLS_SERVICE_NAME = k },
      local.lambda_function_env[k],
    )
  }

  # Stage variables of the API stage (informational for clients and logs; the
  # integration itself targets the function ARN directly).
  api_stage_variables = {
    env                    = var.env
    project                = var.project_name
    streamName             = local.names.stream
    eventProcessorFunction = local.function_names["event_processor"]
    logLevel               = local.flow.log_level
  }

  # SageMaker: the AWS provider 5.x has no aws_sagemaker_endpoint data source, so
  # the endpoint (owned and deployed by the ML team, only referenced here) is
  # addressed by its ARN, which AWS builds from the lower-cased endpoint name.
  sagemaker_endpoint_arn = "arn:${local.partition}:sagemaker:${local.region}:${local.account_id}:endpoint/${lower(var.recommendations_endpoint_name)}"

  # Glue Data Catalog ARNs for the Athena CTAS archive task.
  glue_catalog_arn  = "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"
  glue_database_arn = "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${local.names.glue_database}"
  # CTAS creates a new table per run, whose name is only known at run time: the
  # table ARN is scoped to this one database.
  glue_tables_arn = "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${local.names.glue_database}/*"
}

# -----------------------------------------------------------------------------
# Network: VPC, subnets, NAT, routes, VPC endpoints, flow logs
#
# Topology is the same in every environment: one public and one private subnet
# per AZ and one NAT gateway per AZ (each private route table egresses through
# the NAT of its own zone, so losing a zone never cuts the others off). Only the
# API is reachable from outside; nothing in the VPC has a public address.
# -----------------------------------------------------------------------------
resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # required for private DNS of interface endpoints

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-vpc" })

  lifecycle {
    precondition {
      condition     = length(var.public_subnet_cidrs) == var.num_availability_zones && length(var.private_subnet_cidrs) == var.num_availability_zones
      error_message = "public_subnet_cidrs and private_subnet_cidrs must each hold exactly num_availability_zones CIDRs."
    }
    precondition {
      condition     = length(distinct(concat(var.public_subnet_cidrs, var.private_subnet_cidrs))) == length(concat(var.public_subnet_cidrs, var.private_subnet_cidrs))
      error_message = "public_subnet_cidrs and private_subnet_cidrs must not repeat a CIDR."
    }
  }
}

# The default security group is locked down: no rules, so nothing can use it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-default-locked" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-igw" })
}

resource "aws_subnet" "public" {
  for_each = local.azs

  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.value.name
  cidr_block              = each.value.public_cidr
  map_public_ip_on_launch = false # only the NAT gateways live here, with their own EIPs

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-public-${each.key}", Tier = "public" })

  lifecycle {
    precondition {
      condition     = each.value.name != null && each.value.public_cidr != null
      error_message = "num_availability_zones is larger than the zones available in the region or than public_subnet_cidrs."
    }
  }
}

resource "aws_subnet" "private" {
  for_each = local.azs

  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.value.name
  cidr_block              = each.value.private_cidr
  map_public_ip_on_launch = false

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-private-${each.key}", Tier = "private" })

  lifecycle {
    precondition {
      condition     = each.value.name != null && each.value.private_cidr != null
      error_message = "num_availability_zones is larger than the zones available in the region or than private_subnet_cidrs."
    }
  }
}

resource "aws_eip" "nat" {
  for_each = local.azs

  domain = "vpc"

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-nat-${each.key}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  for_each = local.azs

  allocation_id = aws_eip.nat[each.key].id
  subnet_id     = aws_subnet.public[each.key].id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-nat-${each.key}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  for_each = local.azs

  subnet_id      = aws_subnet.public[each.key].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  for_each = local.azs

  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-private-${each.key}" })
}

resource "aws_route" "private_nat" {
  for_each = local.azs

  route_table_id         = aws_route_table.private[each.key].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[each.key].id
}

resource "aws_route_table_association" "private" {
  for_each = local.azs

  subnet_id      = aws_subnet.private[each.key].id
  route_table_id = aws_route_table.private[each.key].id
}

# Gateway endpoints keep DynamoDB and S3 traffic off the NAT gateways.
resource "aws_vpc_endpoint" "gateway" {
  for_each = toset(["dynamodb", "s3"])

  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [for rt in aws_route_table.private : rt.id]

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${each.key}-gateway" })
}

# Interface endpoints (private DNS) for the APIs the Lambdas call from the VPC.
# Secrets Manager is added to the spec's list so credentials never leave the VPC.
resource "aws_vpc_endpoint" "interface" {
  for_each = toset(["kinesis-streams", "sns", "sqs", "sagemaker.runtime", "states", "secretsmanager"])

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = [for s in aws_subnet.private : s.id]
  security_group_ids  = [aws_security_group.this["endpoints"].id]

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${replace(each.key, ".", "-")}-endpoint" })
}

# VPC flow logs (all traffic) to a KMS-encrypted log group.
resource "aws_flow_log" "vpc" {
  vpc_id                   = aws_vpc.this.id
  traffic_type             = "ALL"
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.this["vpc_flow_logs"].arn
  iam_role_arn             = aws_iam_role.service["flow_logs"].arn
  max_aggregation_interval = 60

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-flow-logs" })

  depends_on = [aws_iam_role_policy.service]
}

# -----------------------------------------------------------------------------
# Security: KMS customer-managed keys
#
# Two keys, both with yearly automatic rotation:
#   data - every data store and message channel (DynamoDB, Kinesis, S3, SQS, SNS,
#          Secrets Manager, Aurora, ElastiCache, Athena results, Step Functions,
#          Lambda environment variables)
#   logs - every CloudWatch log group (CloudWatch Logs needs its own grant with an
#          encryption-context condition, kept apart from the data key)
# Key policies never use kms:* : the account root gets the explicit administrative
# and cryptographic actions (IAM policies then delegate), services get only what
# they call. "Resource": "*" inside a key policy means "this key".
# -----------------------------------------------------------------------------
locals {
  kms_root_actions = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
  ]

  # Services that encrypt/decrypt with the data key on our behalf:
  #   sns.amazonaws.com          delivers watched-complete to the encrypted FIFO queues
  #   events.amazonaws.com       sends failed schedule deliveries to the encrypted async_failures DLQ
  #   cloudwatch.amazonaws.com   publishes alarm notifications to the encrypted alarms topic
  #   delivery.logs.amazonaws.com reads the encrypted Step Functions execution data it logs
  kms_data_service_principals = ["sns.amazonaws.com", "events.amazonaws.com", "cloudwatch.amazonaws.com", "delivery.logs.amazonaws.com"]

  # Log groups the logs key may encrypt (encryption-context condition). The API
  # Gateway execution log group name embeds the REST API id, hence the pattern.
  log_group_arn_prefix = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:"
  kms_logs_context_arns = concat(
    [for k, name in local.log_group_names : "${local.log_group_arn_prefix}${name}" if k != "api_execution"],
    ["${local.log_group_arn_prefix}API-Gateway-Execution-Logs_*/${var.stage_name}"],
  )
}

data "aws_iam_policy_document" "kms_data" {
  statement {
    sid       = "AccountRootAdministersKey"
    effect    = "Allow"
    actions   = local.kms_root_actions
    resources = ["*"] # in a key policy "*" is the key itself
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "ServicesUseKeyForThisAccount"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = local.kms_data_service_principals
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "kms_logs" {
  statement {
    sid       = "AccountRootAdministersKey"
    effect    = "Allow"
    actions   = local.kms_root_actions
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid    = "CloudWatchLogsEncryptsThisStacksLogGroups"
    effect = "Allow"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:DescribeKey",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = local.kms_logs_context_arns
    }
  }
}

resource "aws_kms_key" "this" {
  for_each = {
    data = {
      description = "Data stores and messaging of ${local.name_prefix}"
      policy      = data.aws_iam_policy_document.kms_data.json
    }
    logs = {
      description = "CloudWatch log groups of ${local.name_prefix}"
      policy      = data.aws_iam_policy_document.kms_logs.json
    }
  }

  description             = each.value.description
  policy                  = each.value.policy
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${each.key}" })
}

resource "aws_kms_alias" "this" {
  for_each = aws_kms_key.this

  name          = "alias/${local.name_prefix}-${each.key}"
  target_key_id = each.value.key_id
}

# -----------------------------------------------------------------------------
# Security: security groups (rules are separate resources, one per edge)
#   lambda    - no ingress; egress only to Redis, Aurora, the endpoints and HTTPS
#   redis     - 6379 from the lambda SG only
#   aurora    - 5432 from the lambda SG only
#   endpoints - 443 from the lambda SG only
# -----------------------------------------------------------------------------
locals {
  security_groups = {
    lambda    = "Lambda functions (egress only)"
    redis     = "ElastiCache Redis (6379 from Lambda only)"
    aurora    = "Aurora PostgreSQL (5432 from Lambda only)"
    endpoints = "Interface VPC endpoints (443 from Lambda only)"
  }

  security_group_ingress = {
    redis_from_lambda     = { sg = "redis", port = local.flow.redis_port, peer = "lambda", description = "Redis TLS from Lambda" }
    aurora_from_lambda    = { sg = "aurora", port = local.flow.aurora_port, peer = "lambda", description = "PostgreSQL TLS from Lambda" }
    endpoints_from_lambda = { sg = "endpoints", port = 443, peer = "lambda", description = "HTTPS to interface endpoints from Lambda" }
  }

  security_group_egress = {
    lambda_to_redis     = { sg = "lambda", port = local.flow.redis_port, peer = "redis", cidr = null, description = "Redis TLS" }
    lambda_to_aurora    = { sg = "lambda", port = local.flow.aurora_port, peer = "aurora", cidr = null, description = "PostgreSQL TLS" }
    lambda_to_endpoints = { sg = "lambda", port = 443, peer = "endpoints", cidr = null, description = "Interface endpoints" }
    # Athena, Glue, X-Ray and the S3/DynamoDB gateway endpoints (prefix lists) are
    # reached over HTTPS; anything without an endpoint leaves through the NAT.
    lambda_https = { sg = "lambda", port = 443, peer = null, cidr = "0.0.0.0/0", description = "HTTPS to AWS APIs (gateway endpoints and NAT)" }
  }
}

resource "aws_security_group" "this" {
  for_each = local.security_groups

  name        = "${local.name_prefix}-${each.key}"
  description = each.value
  vpc_id      = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${each.key}" })
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = local.security_group_ingress

  security_group_id            = aws_security_group.this[each.value.sg].id
  referenced_security_group_id = aws_security_group.this[each.value.peer].id
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.description

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${replace(each.key, "_", "-")}" })
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each = local.security_group_egress

  security_group_id            = aws_security_group.this[each.value.sg].id
  referenced_security_group_id = each.value.peer == null ? null : aws_security_group.this[each.value.peer].id
  cidr_ipv4                    = each.value.cidr
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.description

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${replace(each.key, "_", "-")}" })
}

# -----------------------------------------------------------------------------
# Security: Secrets Manager (contract.md, "Secrets")
# -----------------------------------------------------------------------------
resource "aws_secretsmanager_secret" "this" {
  for_each = {
    redis  = { name = local.names.redis_secret, description = "Redis AUTH token of ${local.names.redis}" }
    aurora = { name = local.names.aurora_secret, description = "Aurora PostgreSQL master credentials of ${local.names.aurora}" }
  }

  name                    = each.value.name
  description             = each.value.description
  kms_key_id              = aws_kms_key.this["data"].arn
  recovery_window_in_days = var.secret_recovery_window_days

  tags = local.common_tags
}

# {"auth_token": "..."}; the replication group reads the token from this version.
resource "aws_secretsmanager_secret_version" "redis_auth" {
  secret_id     = aws_secretsmanager_secret.this["redis"].id
  secret_string = jsonencode({ auth_token = data.aws_secretsmanager_random_password.redis_auth.random_password })

  lifecycle {
    ignore_changes = [secret_string] # keep the first generated token; plans stay stable
  }
}

# {"username","password","engine","host","port","dbname"}. The host is only known
# once the cluster exists, so the cluster cannot read its password back from this
# version (that would be a cycle): both take it from the same generated value in
# the same run, and both ignore later changes of that value.
resource "aws_secretsmanager_secret_version" "aurora_master" {
  secret_id = aws_secretsmanager_secret.this["aurora"].id
  secret_string = jsonencode({
    username = var.master_username
    password = data.aws_secretsmanager_random_password.aurora_master.random_password
    engine   = "postgres"
    host     = aws_rds_cluster.aurora.endpoint
    port     = local.flow.aurora_port
    dbname   = var.db_name
  })

  lifecycle {
    ignore_changes = [secret_string]
  }
}

# -----------------------------------------------------------------------------
# Security: IAM, one role per Lambda function (least privilege)
#
# Every statement names its actions and scopes its resources to exact ARNs
# (tables, streams, queues, topics, secrets, buckets/prefixes, the SageMaker
# endpoint, the Athena workgroup, the Glue database). The only "*" resources are
# the ones AWS forces, each marked below. No statement ever uses a "*" action.
# -----------------------------------------------------------------------------
locals {
  tables      = aws_dynamodb_table.this
  data_key    = aws_kms_key.this["data"].arn
  archive_arn = aws_s3_bucket.this["archive"].arn
  results_arn = aws_s3_bucket.this["athena_results"].arn

  kinesis_read_actions = [
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
    "kinesis:SubscribeToShard",
  ]
  sqs_consume_actions = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
  ]

  # Statements every function gets.
  lambda_base_statements = {
    for k in keys(local.lambda_functions) : k => [
      {
        sid       = "WriteOwnLogGroup"
        actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        resources = ["${aws_cloudwatch_log_group.this[k].arn}:*"]
      },
      {
        # AWS forces "*": Lambda manages the function's ENIs in the VPC and these
        # EC2 calls do not support resource-level permissions.
        sid = "ManageVpcNetworkInterfaces"
        actions = [
          "ec2:CreateNetworkInterface",
          "ec2:DescribeNetworkInterfaces",
          "ec2:DescribeSubnets",
          "ec2:DeleteNetworkInterface",
          "ec2:AssignPrivateIpAddresses",
          "ec2:UnassignPrivateIpAddresses",
        ]
        resources = ["*"]
      },
      {
        # AWS forces "*": X-Ray trace segments have no resource ARN.
        sid       = "WriteXRayTraces"
        actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
        resources = ["*"]
      },
      {
        # The data key protects every store, queue, topic and the environment variables.
        sid       = "UseDataKey"
        actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
        resources = [local.data_key]
      },
      {
        sid       = "SendToAsyncFailureQueue"
        actions   = ["sqs:SendMessage"]
        resources = [aws_sqs_queue.dead_letter["async_failures"].arn]
      },
    ]
  }

  # What each function does beyond the base.
  lambda_extra_statements = {
    event_processor = [
      {
        sid       = "PutViewingEvents"
        actions   = ["kinesis:PutRecord"]
        resources = [aws_kinesis_stream.activity.arn]
      },
    ]
    activity_consumer = [
      {
        sid       = "ReadViewingEvents"
        actions   = local.kinesis_read_actions
        resources = [aws_kinesis_stream.activity.arn]
      },
      {
        # The summaries (BatchGetItem, GetItem after a lost race); TransactWriteItems is
        # authorised per item, and every item is a conditional Put (event items, completed-title
        # markers, summary).
        sid       = "WriteUserActivity"
        actions   = ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"]
        resources = [local.tables["activity"].arn]
      },
      {
        sid       = "LandRawEvents"
        actions   = ["s3:PutObject"]
        resources = ["${local.archive_arn}/${local.flow.raw_prefix}*"]
      },
      {
        sid       = "AnnounceWatchMilestones"
        actions   = ["sqs:SendMessage"]
        resources = [aws_sqs_queue.consumer["achievements"].arn]
      },
      {
        sid       = "SendDiscardedBatches"
        actions   = ["sqs:SendMessage"]
        resources = [aws_sqs_queue.dead_letter["stream_failures"].arn]
      },
    ]
    completion_detector = [
      {
        sid       = "ReadViewingEvents"
        actions   = local.kinesis_read_actions
        resources = [aws_kinesis_stream.activity.arn]
      },
      {
        sid       = "PublishCompletions" # PublishBatch is authorised as sns:Publish
        actions   = ["sns:Publish"]
        resources = [aws_sns_topic.this["complete"].arn]
      },
      {
        sid       = "SendDiscardedBatches"
        actions   = ["sqs:SendMessage"]
        resources = [aws_sqs_queue.dead_letter["stream_failures"].arn]
      },
    ]
    recommendations = [
      {
        sid       = "ReadActivityStream"
        actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
        resources = ["${local.tables["activity"].arn}/stream/*"]
      },
      {
        # AWS forces "*": ListStreams has no resource type (a stream ARN here never matches).
        sid       = "ListTableStreams"
        actions   = ["dynamodb:ListStreams"]
        resources = ["*"]
      },
      {
        sid       = "QueryViewingPatterns"
        actions   = ["dynamodb:Query"]
        resources = [local.tables["activity"].arn, "${local.tables["activity"].arn}/index/*"]
      },
      {
        # Previous lists (BatchGetItem) and the new top-N (BatchWriteItem).
        sid       = "ReadWriteRecommendations"
        actions   = ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"]
        resources = [local.tables["recommendations"].arn]
      },
      {
        sid       = "ReadRedisAuthToken"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = [aws_secretsmanager_secret.this["redis"].arn]
      },
      {
        sid       = "InvokeRecommendationModel"
        actions   = ["sagemaker:InvokeEndpoint"]
        resources = [local.sagemaker_endpoint_arn]
      },
      {
        sid       = "SendDiscardedBatches"
        actions   = ["sqs:SendMessage"]
        resources = [aws_sqs_queue.dead_letter["stream_failures"].arn]
      },
    ]
    analytics_consumer = [
      {
        sid       = "ConsumeAnalyticsQueue"
        actions   = local.sqs_consume_actions
        resources = [aws_sqs_queue.consumer["analytics"].arn]
      },
      {
        sid       = "ReadAuroraCredentials"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = [aws_secretsmanager_secret.this["aurora"].arn]
      },
    ]
    achievements_consumer = [
      {
        sid       = "ConsumeAchievementsQueue"
        actions   = local.sqs_consume_actions
        resources = [aws_sqs_queue.consumer["achievements"].arn]
      },
      {
        sid       = "ReadActivitySummary"
        actions   = ["dynamodb:BatchGetItem"]
        resources = [local.tables["activity"].arn]
      },
      {
        # Conditional PutItem awards a badge once; UpdateItem marks it notified.
        sid       = "WriteBadges"
        actions   = ["dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
        resources = [local.tables["achievements"].arn]
      },
      {
        sid       = "NotifyUsers"
        actions   = ["sns:Publish"]
        resources = [aws_sns_topic.this["notifications"].arn]
      },
    ]
    cache_refresh = [
      {
        sid       = "ReadAuroraCredentials"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = [aws_secretsmanager_secret.this["aurora"].arn]
      },
      {
        sid       = "ReadRedisAuthToken"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = [aws_secretsmanager_secret.this["redis"].arn]
      },
    ]
    expiration_find = [
      {
        sid       = "ReadAuroraCredentials"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = [aws_secretsmanager_secret.this["aurora"].arn]
      },
    ]
    expiration_mark = [
      {
        sid       = "FlagExpiredContent"
        actions   = ["dynamodb:BatchGetItem", "dynamodb:UpdateItem"]
        resources = [local.tables["catalog"].arn]
      },
    ]
    expiration_purge = [
      {
        sid       = "ReadRedisAuthToken"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = [aws_secretsmanager_secret.this["redis"].arn]
      },
    ]
    expiration_archive = [
      {
        sid       = "RunArchiveQuery"
        actions   = ["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults", "athena:StopQueryExecution", "athena:GetWorkGroup"]
        resources = [aws_athena_workgroup.this.arn]
      },
      {
        sid = "UseViewingCatalog"
        actions = [
          "glue:GetDatabase",
          "glue:GetTable",
          "glue:GetTables",
          "glue:GetPartitions",
          "glue:CreateTable",
          "glue:DeleteTable",
          "glue:BatchCreatePartition",
          "glue:CreatePartition",
        ]
        resources = [local.glue_catalog_arn, local.glue_database_arn, local.glue_tables_arn]
      },
      {
        sid       = "LocateBuckets"
        actions   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
        resources = [local.archive_arn, local.results_arn]
      },
      {
        sid       = "ReadRawEvents"
        actions   = ["s3:GetObject"]
        resources = ["${local.archive_arn}/${local.flow.raw_prefix}*"]
      },
      {
        sid       = "WriteArchive"
        actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
        resources = ["${local.archive_arn}/${local.flow.archive_prefix}*"]
      },
      {
        sid       = "WriteQueryResults"
        actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
        resources = ["${local.results_arn}/*"]
      },
    ]
    thumbnail_validator = [
      {
        # HeadObject, and GetObject of the version the event names (s3:GetObjectVersion).
        sid       = "ReadUploadedThumbnails"
        actions   = ["s3:GetObject", "s3:GetObjectVersion"]
        resources = ["${aws_s3_bucket.this["thumbnails"].arn}/${local.flow.thumbnail_prefix}*"]
      },
      {
        sid       = "RecordThumbnailStatus"
        actions   = ["dynamodb:UpdateItem"]
        resources = [local.tables["catalog"].arn]
      },
    ]
  }
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    sid     = "LambdaAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "lambda" {
  for_each = local.lambda_functions

  dynamic "statement" {
    for_each = concat(local.lambda_base_statements[each.key], local.lambda_extra_statements[each.key])
    content {
      sid       = statement.value.sid
      effect    = "Allow"
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}

resource "aws_iam_role" "lambda" {
  for_each = local.lambda_functions

  name                 = "${local.function_names[each.key]}-role"
  description          = "Execution role of ${local.function_names[each.key]}"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  max_session_duration = 3600

  tags = local.common_tags
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.lambda_functions

  name   = "least-privilege"
  role   = aws_iam_role.lambda[each.key].id
  policy = data.aws_iam_policy_document.lambda[each.key].json
}

# -----------------------------------------------------------------------------
# Security: IAM, service roles (Step Functions, EventBridge, API Gateway logging,
# VPC flow logs)
# -----------------------------------------------------------------------------
locals {
  # Built from the name rather than the resource so that the EventBridge role's
  # policy does not depend on the state machine, which depends on these roles.
  state_machine_arn = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.names.state_machine}"

  # Trust and description only: roles can be created before the things their
  # policies name (the policies below depend on those, the roles do not).
  service_roles = {
    states      = { service = "states.amazonaws.com", source_account_required = true, description = "Step Functions: runs the content-expiration tasks" }
    events      = { service = "events.amazonaws.com", source_account_required = true, description = "EventBridge: starts the nightly content-expiration execution" }
    api_gateway = { service = "apigateway.amazonaws.com", source_account_required = false, description = "API Gateway account-level CloudWatch role (access and execution logs)" }
    flow_logs   = { service = "vpc-flow-logs.amazonaws.com", source_account_required = true, description = "VPC flow logs delivery to CloudWatch Logs" }
  }

  service_role_statements = {
    states = [
      {
        sid       = "InvokeExpirationTasks"
        actions   = ["lambda:InvokeFunction"]
        resources = [for k in ["expiration_find", "expiration_mark", "expiration_purge", "expiration_archive"] : aws_lambda_function.this[k].arn]
      },
      {
        # AWS forces "*": CloudWatch Logs vended-log delivery APIs have no resource-level permissions.
        sid = "DeliverExecutionLogs"
        actions = [
          "logs:CreateLogDelivery",
          "logs:GetLogDelivery",
          "logs:UpdateLogDelivery",
          "logs:DeleteLogDelivery",
          "logs:ListLogDeliveries",
          "logs:PutResourcePolicy",
          "logs:DescribeResourcePolicies",
          "logs:DescribeLogGroups",
        ]
        resources = ["*"]
      },
      {
        # AWS forces "*": X-Ray APIs have no resource ARN.
        sid       = "WriteXRayTraces"
        actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
        resources = ["*"]
      },
      {
        sid       = "UseDataKeyForExecutionData"
        actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
        resources = [local.data_key]
      },
    ]
    events = [
      {
        sid       = "StartExpiration"
        actions   = ["states:StartExecution"]
        resources = [local.state_machine_arn]
      },
    ]
    api_gateway = [
      {
        # The account-level logging role is one per account and region and is
        # shared by every environment deployed there, so it covers this
        # project's API log groups of all environments.
        sid     = "WriteApiLogs"
        actions = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
        resources = [
          "${local.log_group_arn_prefix}/aws/apigateway/${var.project_name}-*",
          "${local.log_group_arn_prefix}API-Gateway-Execution-Logs_*",
        ]
      },
      {
        # AWS forces "*": DescribeLogGroups has no resource-level permissions.
        sid       = "FindLogGroups"
        actions   = ["logs:DescribeLogGroups"]
        resources = ["*"]
      },
    ]
    flow_logs = [
      {
        sid       = "WriteFlowLogs"
        actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
        resources = [aws_cloudwatch_log_group.this["vpc_flow_logs"].arn, "${aws_cloudwatch_log_group.this["vpc_flow_logs"].arn}:*"]
      },
      {
        # AWS forces "*": DescribeLogGroups has no resource-level permissions.
        sid       = "FindLogGroups"
        actions   = ["logs:DescribeLogGroups"]
        resources = ["*"]
      },
    ]
  }
}

data "aws_iam_policy_document" "service_assume" {
  for_each = local.service_roles

  statement {
    sid     = "ServiceAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [each.value.service]
    }
    # Confused-deputy guard where the service sends aws:SourceAccount.
    dynamic "condition" {
      for_each = each.value.source_account_required ? [local.account_id] : []
      content {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [condition.value]
      }
    }
  }
}

data "aws_iam_policy_document" "service" {
  for_each = local.service_role_statements

  dynamic "statement" {
    for_each = each.value
    content {
      sid       = statement.value.sid
      effect    = "Allow"
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}

resource "aws_iam_role" "service" {
  for_each = local.service_roles

  name                 = "${local.name_prefix}-${replace(each.key, "_", "-")}-role"
  description          = each.value.description
  assume_role_policy   = data.aws_iam_policy_document.service_assume[each.key].json
  max_session_duration = 3600

  tags = local.common_tags
}

resource "aws_iam_role_policy" "service" {
  for_each = local.service_role_statements

  name   = "least-privilege"
  role   = aws_iam_role.service[each.key].id
  policy = data.aws_iam_policy_document.service[each.key].json
}

# -----------------------------------------------------------------------------
# Ingest: API Gateway REST API (POST /watch, /pause, /complete)
#
# Each route validates the body against the ViewingEvent model (draft-04 JSON
# schema from contract.md) before the Lambda proxy integration runs; the event
# type comes from the path. Cross-field rules JSON schema draft-04 cannot express
# (position_seconds <= duration_seconds) and the 8 KiB body limit are enforced by
# event_processor, which answers 400/413 in the same error shape.
# -----------------------------------------------------------------------------
locals {
  api_routes = toset(["watch", "pause", "complete"])

  api_models = {
    ViewingEvent = {
      description = "A viewing event posted by a player"
      schema = {
        "$schema"            = "http://json-schema.org/draft-04/schema#"
        title                = "ViewingEvent"
        type                 = "object"
        additionalProperties = false
        required             = ["event_id", "user_id", "content_id", "position_seconds", "duration_seconds", "client_timestamp"]
        properties = {
          event_id         = { type = "string", pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$" }
          user_id          = { type = "string", pattern = "^[A-Za-z0-9_-]{1,64}$" }
          content_id       = { type = "string", pattern = "^[A-Za-z0-9_-]{1,64}$" }
          position_seconds = { type = "number", minimum = 0, maximum = 86400 }
          duration_seconds = { type = "number", minimum = 1, maximum = 86400 }
          client_timestamp = { type = "string", pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?Z$" }
        }
      }
    }
    AcceptedResponse = {
      description = "202: the event was written to the stream"
      schema = {
        "$schema"            = "http://json-schema.org/draft-04/schema#"
        title                = "AcceptedResponse"
        type                 = "object"
        additionalProperties = false
        required             = ["event_id", "status"]
        properties = {
          event_id = { type = "string" }
          status   = { type = "string", enum = ["accepted"] }
        }
      }
    }
    ErrorResponse = {
      description = "400/413/500: what was wrong"
      schema = {
        "$schema"            = "http://json-schema.org/draft-04/schema#"
        title                = "ErrorResponse"
        type                 = "object"
        additionalProperties = false
        required             = ["error"]
        properties = {
          error = { type = "string" }
          field = { type = "string" }
        }
      }
    }
  }

  api_method_responses = {
    for pair in setproduct(local.api_routes, ["202", "400", "413", "500"]) : "${pair[0]}-${pair[1]}" => {
      route  = pair[0]
      status = pair[1]
      model  = pair[1] == "202" ? "AcceptedResponse" : "ErrorResponse"
    }
  }

  # Validation failures answered by API Gateway itself use the contract's error shape.
  api_gateway_responses = {
    BAD_REQUEST_BODY       = "body"
    BAD_REQUEST_PARAMETERS = "headers"
  }
}

resource "aws_api_gateway_rest_api" "this" {
  name        = local.names.api
  description = "Viewing events ingestion for ${local.name_prefix}"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  tags = local.common_tags
}

resource "aws_api_gateway_resource" "route" {
  for_each = local.api_routes

  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = each.key
}

resource "aws_api_gateway_model" "this" {
  for_each = local.api_models

  rest_api_id  = aws_api_gateway_rest_api.this.id
  name         = each.key
  description  = each.value.description
  content_type = "application/json"
  schema       = jsonencode(each.value.schema)
}

resource "aws_api_gateway_request_validator" "body_and_params" {
  rest_api_id                 = aws_api_gateway_rest_api.this.id
  name                        = "body-and-parameters"
  validate_request_body       = true
  validate_request_parameters = true
}

resource "aws_api_gateway_method" "route" {
  for_each = local.api_routes

  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.route[each.key].id
  http_method          = "POST"
  authorization        = "NONE" # public ingestion endpoint; abuse is bounded by stage throttling
  operation_name       = "Post${title(each.key)}Event"
  request_validator_id = aws_api_gateway_request_validator.body_and_params.id
  request_models       = { "application/json" = aws_api_gateway_model.this["ViewingEvent"].name }
  request_parameters   = { "method.request.header.Content-Type" = true }
}

resource "aws_api_gateway_method_response" "route" {
  for_each = local.api_method_responses

  rest_api_id     = aws_api_gateway_rest_api.this.id
  resource_id     = aws_api_gateway_resource.route[each.value.route].id
  http_method     = aws_api_gateway_method.route[each.value.route].http_method
  status_code     = each.value.status
  response_models = { "application/json" = aws_api_gateway_model.this[each.value.model].name }
}

resource "aws_api_gateway_integration" "route" {
  for_each = local.api_routes

  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.route[each.key].id
  http_method             = aws_api_gateway_method.route[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.this["event_processor"].invoke_arn
  timeout_milliseconds    = 29000
}

resource "aws_api_gateway_gateway_response" "validation" {
  for_each = local.api_gateway_responses

  rest_api_id   = aws_api_gateway_rest_api.this.id
  response_type = each.key
  status_code   = "400"
  response_templates = {
    "application/json" = "{\"error\": $context.error.messageString, \"field\": \"${each.value}\"}"
  }
}

# Only API Gateway, only this API, only POST on the three routes of this stage.
resource "aws_lambda_permission" "api" {
  for_each = local.api_routes

  statement_id  = "AllowApiGatewayPost${title(each.key)}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["event_processor"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}/POST/${each.key}"
}

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  description = "Viewing events API"

  # Redeploy whenever the API definition changes. The hash covers the
  # configuration (routes, models, responses, integration target) and the ids of
  # what it wires, never whole resource objects: their optional attributes read
  # back differently after the first refresh and would redeploy on every plan.
  triggers = {
    redeployment = sha1(jsonencode([
      local.api_routes,
      local.api_models,
      local.api_method_responses,
      local.api_gateway_responses,
      [for r in aws_api_gateway_resource.route : r.id],
      [for m in aws_api_gateway_method.route : m.id],
      [for i in aws_api_gateway_integration.route : [i.id, i.uri]],
      aws_api_gateway_request_validator.body_and_params.id,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [
    aws_api_gateway_method.route,
    aws_api_gateway_integration.route,
    aws_api_gateway_method_response.route,
  ]
}

# One role per account and region: API Gateway uses it to write CloudWatch logs.
# Every environment deployed in the same account sets the same kind of role
# (its policy covers this project's API log groups of every environment), and
# reset_on_delete stays off so destroying one environment never silences another.
resource "aws_api_gateway_account" "this" {
  cloudwatch_role_arn = aws_iam_role.service["api_gateway"].arn

  depends_on = [aws_iam_role_policy.service]
}

resource "aws_api_gateway_stage" "this" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  description          = "${var.env} stage"
  xray_tracing_enabled = true
  variables            = local.api_stage_variables

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.this["api_access"].arn
    format = jsonencode({
      requestId          = "$context.requestId"
      extendedRequestId  = "$context.extendedRequestId"
      ip                 = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      requestTime        = "$context.requestTime"
      httpMethod         = "$context.httpMethod"
      resourcePath       = "$context.resourcePath"
      status             = "$context.status"
      protocol           = "$context.protocol"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationLatency = "$context.integrationLatency"
      integrationStatus  = "$context.integrationStatus"
      errorMessage       = "$context.error.message"
      xrayTraceId        = "$context.xrayTraceId"
    })
  }

  tags = local.common_tags

  depends_on = [aws_api_gateway_account.this]
}

resource "aws_api_gateway_method_settings" "all" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = "INFO"
    data_trace_enabled     = false # never log request/response bodies
    throttling_rate_limit  = var.throttle_rate_limit
    throttling_burst_limit = var.throttle_burst_limit
  }

  # Execution logs go to the pre-created, KMS-encrypted group.
  depends_on = [aws_cloudwatch_log_group.this]
}

# -----------------------------------------------------------------------------
# Ingest: Lambda layer and functions (all twelve functions of contract.md share
# one for_each; event_processor is the ingest one, the others are wired below)
#
# Every function: VPC private subnets + the lambda SG, X-Ray active tracing, the
# shared layer, its own KMS-encrypted log group created first, its own role,
# KMS-encrypted environment, and a dead-letter queue for asynchronous
# invocations (only the S3-triggered thumbnail_validator is invoked
# asynchronously; for the others the setting is inert but uniform).
# -----------------------------------------------------------------------------
resource "aws_lambda_layer_version" "common" {
  layer_name               = local.names.layer
  description              = "aws-lambda-powertools, redis, pg8000 and tap_common"
  filename                 = data.archive_file.layer.output_path
  source_code_hash         = data.archive_file.layer.output_base64sha256
  compatible_runtimes      = [var.runtime]
  compatible_architectures = ["x86_64"]
}

resource "aws_lambda_function" "this" {
  for_each = local.lambda_functions

  function_name    = local.function_names[each.key]
  description      = each.value.description
  role             = aws_iam_role.lambda[each.key].arn
  runtime          = var.runtime
  handler          = each.value.handler
  architectures    = ["x86_64"]
  filename         = data.archive_file.lambda_package[each.value.package].output_path
  source_code_hash = data.archive_file.lambda_package[each.value.package].output_base64sha256
  layers           = [aws_lambda_layer_version.common.arn]
  memory_size      = each.value.memory
  timeout          = each.value.timeout
  kms_key_arn      = local.data_key

  environment {
    variables = local.lambda_environment[each.key]
  }

  vpc_config {
    subnet_ids         = [for s in aws_subnet.private : s.id]
    security_group_ids = [aws_security_group.this["lambda"].id]
  }

  tracing_config {
    mode = "Active"
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dead_letter["async_failures"].arn
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  tags = merge(local.common_tags, { Function = each.key })

  # The role must carry its permissions (ENIs, queues, streams) before Lambda
  # validates them, and the log group must exist with its KMS key and retention
  # before the first invocation would create an unencrypted one.
  depends_on = [
    aws_iam_role_policy.lambda,
    aws_cloudwatch_log_group.this,
  ]
}

# -----------------------------------------------------------------------------
# Ingest: Kinesis viewing-events stream (partition key user_id, KMS)
# -----------------------------------------------------------------------------
resource "aws_kinesis_stream" "activity" {
  name                      = local.names.stream
  shard_count               = var.stream_mode == "PROVISIONED" ? var.shard_count : null
  retention_period          = var.retention_hours
  encryption_type           = "KMS"
  kms_key_id                = local.data_key
  enforce_consumer_deletion = true

  stream_mode_details {
    stream_mode = var.stream_mode
  }

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Process: event source mappings (streams and queues -> consumer functions)
#
# All five mappings report partial batch failures (ReportBatchItemFailures), so
# only the failed records are retried. Stream mappings additionally bisect a
# failing batch, retry a bounded number of times, drop records older than an
# hour, and send what they discard to the stream_failures queue. Streams start
# at TRIM_HORIZON: when a mapping is (re)created nothing still retained in the
# stream is skipped; the consumers are idempotent (conditional writes keyed on
# event_id, FIFO de-duplication), so a replay cannot double-count.
#
# Recommendation algorithm flow (recommendations function, DynamoDB stream of
# user_activity; the code is lib/lambdas/recommendations, ranking in ranking.py):
#   1. Trigger: activity_consumer writes, per user per batch, one transaction:
#      the new event items plus one update of the user's SUMMARY item. The
#      mapping filter passes only INSERT/MODIFY of SUMMARY items, so each
#      activity transaction triggers exactly one recomputation for that user
#      (event items, which arrive in the same transaction, never trigger twice);
#      a batch is handled once per user.
#   2. Viewing pattern: one Query on user_activity for the user's most recent
#      event items (newest first), reduced to distinct content ids with their
#      last progress: the seeds (at most 10).
#   3. Candidates from ElastiCache Redis (a cache filled from Aurora and the
#      catalog): the collaborative-filtering neighbours of every seed
#      (cf:{content_id} sorted sets, similarity scores) and their popularity
#      (content:{content_id} hashes).
#   4. Exclusions on every path: expired content (Redis set expired:content,
#      kept current by the nightly expiration state machine) and content the
#      user already completed (progress >= FULL_COMPLETION_RATIO).
#   5. Scoring:
#      - "sagemaker": InvokeEndpoint on the SageMaker endpoint with
#        {user_id, recent_content_ids, candidates} -> {recommendations:
#        [{content_id, score}]}; scored items rank first, the remaining
#        candidates follow in the Redis order below.
#      - Redis fallback (endpoint error, timeout or unusable answer):
#        score(c) = sum over seeds s of w(s) * sim(s, c) + 0.05 * log1p(popularity(c)),
#        w(s) = 0.8 ^ (recency rank of s) * (0.5 + progress(s)).
#      - DynamoDB-only fallback (Redis unavailable): content in progress, newest
#        first, then the previous recommendations that are still valid.
#   6. Output: the top TOP_N (10) by score (ties by content_id, so equal inputs
#      give equal lists) go to user_recommendations (items [{content_id, score,
#      rank}], generated_at, source) with the TTL attribute set
#      RECOMMENDATION_TTL_HOURS (24 h) ahead, one BatchWriteItem per batch, and
#      to Redis recs:{user_id} with the same TTL. A list is always written.
#   7. Failures: users whose read or write failed are reported as batch item
#      failures; the mapping bisects and retries, then parks the records in
#      stream_failures. Logic, batching and windows are identical in every
#      environment; only memory, timeout and the stream's shard count scale.
# -----------------------------------------------------------------------------
locals {
  stream_mapping_defaults = {
    starting_position      = "TRIM_HORIZON"
    bisect                 = true
    maximum_retry_attempts = local.flow.stream_max_retry_attempts
    maximum_record_age     = local.flow.stream_max_record_age_s
    batching_window        = local.flow.stream_batching_window_s
    on_failure_arn         = aws_sqs_queue.dead_letter["stream_failures"].arn
    maximum_concurrency    = null
  }

  queue_mapping_defaults = {
    starting_position      = null
    bisect                 = null
    maximum_retry_attempts = null
    maximum_record_age     = null
    batching_window        = null # FIFO queues do not support a batching window
    on_failure_arn         = null # failed messages are redriven to the queue's DLQ
    parallelization_factor = null
    tumbling_window        = null
    filters                = []
    batch_size             = local.flow.sqs_batch_size
  }

  event_source_mappings = {
    # Kinesis -> activity_consumer: the tumbling window lets the consumer aggregate
    # per user across the batches of one window (watch progress, last_viewed).
    activity_stream = merge(local.stream_mapping_defaults, {
      function               = "activity_consumer"
      source_arn             = aws_kinesis_stream.activity.arn
      batch_size             = local.flow.kinesis_batch_size
      parallelization_factor = local.flow.kinesis_parallelization
      tumbling_window        = local.flow.kinesis_tumbling_window_s
      filters                = []
    })
    # Kinesis -> completion_detector: a second, independent consumer of the same
    # stream that only ever sees "complete" events (filter on the decoded data).
    completion_stream = merge(local.stream_mapping_defaults, {
      function               = "completion_detector"
      source_arn             = aws_kinesis_stream.activity.arn
      batch_size             = local.flow.kinesis_batch_size
      parallelization_factor = local.flow.kinesis_parallelization
      tumbling_window        = null
      filters                = [jsonencode({ data = { event_type = ["complete"] } })]
    })
    # DynamoDB stream of user_activity -> recommendations (see the flow above):
    # only the SUMMARY item's insert/update, one per user per activity transaction.
    activity_table_stream = merge(local.stream_mapping_defaults, {
      function               = "recommendations"
      source_arn             = aws_dynamodb_table.this["activity"].stream_arn
      batch_size             = local.flow.ddb_stream_batch_size
      parallelization_factor = local.flow.ddb_stream_parallelization
      tumbling_window        = null
      filters = [jsonencode({
        eventName = ["INSERT", "MODIFY"]
        dynamodb  = { Keys = { timestamp = { S = ["SUMMARY"] } } }
      })]
    })
    # SQS (FIFO) -> analytics_consumer and achievements_consumer.
    analytics_queue = merge(local.queue_mapping_defaults, {
      function            = "analytics_consumer"
      source_arn          = aws_sqs_queue.consumer["analytics"].arn
      maximum_concurrency = local.flow.sqs_maximum_concurrency
    })
    achievements_queue = merge(local.queue_mapping_defaults, {
      function            = "achievements_consumer"
      source_arn          = aws_sqs_queue.consumer["achievements"].arn
      maximum_concurrency = local.flow.sqs_maximum_concurrency
    })
  }
}

resource "aws_lambda_event_source_mapping" "this" {
  for_each = local.event_source_mappings

  function_name                      = aws_lambda_function.this[each.value.function].function_name
  event_source_arn                   = each.value.source_arn
  batch_size                         = each.value.batch_size
  maximum_batching_window_in_seconds = each.value.batching_window
  starting_position                  = each.value.starting_position
  parallelization_factor             = each.value.parallelization_factor
  tumbling_window_in_seconds         = each.value.tumbling_window
  bisect_batch_on_function_error     = each.value.bisect
  maximum_retry_attempts             = each.value.maximum_retry_attempts
  maximum_record_age_in_seconds      = each.value.maximum_record_age
  function_response_types            = ["ReportBatchItemFailures"]

  dynamic "destination_config" {
    for_each = each.value.on_failure_arn == null ? [] : [each.value.on_failure_arn]
    content {
      on_failure {
        destination_arn = destination_config.value
      }
    }
  }

  dynamic "filter_criteria" {
    for_each = length(each.value.filters) == 0 ? [] : [each.value.filters]
    content {
      dynamic "filter" {
        for_each = filter_criteria.value
        content {
          pattern = filter.value
        }
      }
    }
  }

  dynamic "scaling_config" {
    for_each = each.value.maximum_concurrency == null ? [] : [each.value.maximum_concurrency]
    content {
      maximum_concurrency = scaling_config.value
    }
  }

  tags = local.common_tags

  lifecycle {
    precondition {
      # AWS refuses an SQS mapping whose queue visibility timeout is shorter than
      # the function timeout (messages would reappear while still in flight).
      condition     = each.value.starting_position != null || var.visibility_timeout_seconds >= var.timeout_s
      error_message = "visibility_timeout_seconds must be at least timeout_s for the SQS consumers (AWS recommends 6 times timeout_s)."
    }
  }
}

# -----------------------------------------------------------------------------
# Store: DynamoDB (contract.md, "DynamoDB tables")
#
# All four tables: billing mode from var.billing_mode (capacity only when
# PROVISIONED), point-in-time recovery, SSE with the data CMK, deletion
# protection from var.deletion_protection (one value for every environment, so
# it is not an environment difference).
# -----------------------------------------------------------------------------
locals {
  dynamodb_tables = {
    activity = {
      hash_key   = "user_id"
      range_key  = "timestamp" # "<client_timestamp ISO-8601>#<event_id>" or "SUMMARY"
      attributes = { user_id = "S", timestamp = "S" }
      stream     = true
      ttl        = false
    }
    recommendations = {
      hash_key   = "user_id"
      range_key  = null
      attributes = { user_id = "S" }
      stream     = false
      ttl        = true # expires var.recommendation_ttl_hours after generation
    }
    achievements = {
      hash_key   = "user_id"
      range_key  = "badge_id" # videos_10, hours_100
      attributes = { user_id = "S", badge_id = "S" }
      stream     = false
      ttl        = false
    }
    catalog = {
      hash_key   = "content_id"
      range_key  = null
      attributes = { content_id = "S" }
      stream     = false
      ttl        = false
    }
  }
}

resource "aws_dynamodb_table" "this" {
  for_each = local.dynamodb_tables

  name                        = local.table_names[each.key]
  billing_mode                = var.billing_mode
  read_capacity               = var.billing_mode == "PROVISIONED" ? var.rcu : null
  write_capacity              = var.billing_mode == "PROVISIONED" ? var.wcu : null
  hash_key                    = each.value.hash_key
  range_key                   = each.value.range_key
  stream_enabled              = each.value.stream
  stream_view_type            = each.value.stream ? "NEW_AND_OLD_IMAGES" : null
  deletion_protection_enabled = var.deletion_protection
  table_class                 = "STANDARD"

  dynamic "attribute" {
    for_each = each.value.attributes
    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "ttl" {
    for_each = each.value.ttl ? [var.ttl_attribute] : []
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = local.data_key
  }

  tags = merge(local.common_tags, { Name = local.table_names[each.key] })
}

# Hot partitions: Contributor Insights ranks the most accessed and most throttled
# user_id keys of user_activity (the alarm below fires on its write throttling).
resource "aws_dynamodb_contributor_insights" "activity" {
  table_name = aws_dynamodb_table.this["activity"].name
}

# -----------------------------------------------------------------------------
# Store: ElastiCache Redis (recommendation cache; contract.md, "Redis keys")
# -----------------------------------------------------------------------------
resource "aws_elasticache_subnet_group" "redis" {
  name        = local.names.redis
  description = "Private subnets of ${local.names.redis}"
  subnet_ids  = [for s in aws_subnet.private : s.id]

  tags = local.common_tags
}

resource "aws_elasticache_parameter_group" "redis7" {
  name        = "${local.names.redis}-redis7"
  family      = "redis7"
  description = "Recommendation cache of ${local.name_prefix}"

  # Under memory pressure evict only keys with a TTL (recs:{user_id}); the
  # content metadata, collaborative-filtering sets and expired:content filter,
  # which ranking depends on, are never evicted.
  parameter {
    name  = "maxmemory-policy"
    value = "volatile-lru"
  }

  # Active defragmentation keeps MemoryFragmentationRatio (alarmed) in check.
  parameter {
    name  = "activedefrag"
    value = "yes"
  }

  tags = local.common_tags
}

resource "aws_elasticache_replication_group" "cache" {
  replication_group_id = local.names.redis
  description          = "Recommendation cache (content metadata, collaborative filtering, recs) of ${local.name_prefix}"
  engine               = "redis"
  engine_version       = var.engine_version
  node_type            = var.node_type
  num_cache_clusters   = var.num_cache_clusters
  port                 = local.flow.redis_port
  parameter_group_name = aws_elasticache_parameter_group.redis7.name
  subnet_group_name    = aws_elasticache_subnet_group.redis.name
  security_group_ids   = [aws_security_group.this["redis"].id]

  # Failover and Multi-AZ need at least one replica. Tying them to the node
  # count ("Redis nodes" is an allowed difference) keeps the graph identical:
  # one replication group everywhere, highly available wherever it has replicas.
  automatic_failover_enabled = var.num_cache_clusters > 1
  multi_az_enabled           = var.num_cache_clusters > 1

  at_rest_encryption_enabled = true
  kms_key_id                 = local.data_key
  transit_encryption_enabled = true
  auth_token                 = var.auth_token_enabled ? jsondecode(aws_secretsmanager_secret_version.redis_auth.secret_string)["auth_token"] : null

  snapshot_retention_limit   = local.flow.redis_snapshot_retention_days
  snapshot_window            = local.flow.redis_snapshot_window
  maintenance_window         = "mon:04:00-mon:05:00"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Store: Aurora PostgreSQL Serverless v2 (content_stats, content_licenses)
# -----------------------------------------------------------------------------
resource "aws_db_subnet_group" "aurora" {
  name        = local.names.aurora
  description = "Private subnets of ${local.names.aurora}"
  subnet_ids  = [for s in aws_subnet.private : s.id]

  tags = local.common_tags
}

resource "aws_rds_cluster_parameter_group" "aurora" {
  name        = "${local.names.aurora}-pg16"
  family      = local.flow.aurora_parameter_family
  description = "TLS-only connections and statement logging for ${local.names.aurora}"

  parameter {
    name         = "rds.force_ssl"
    value        = "1"
    apply_method = "pending-reboot"
  }

  parameter {
    name         = "log_min_duration_statement"
    value        = "1000" # log statements slower than 1 s
    apply_method = "pending-reboot"
  }

  parameter {
    name         = "log_statement"
    value        = "ddl"
    apply_method = "pending-reboot"
  }

  tags = local.common_tags
}

resource "aws_rds_cluster" "aurora" {
  cluster_identifier              = local.names.aurora
  engine                          = "aurora-postgresql"
  engine_mode                     = "provisioned" # Serverless v2 runs in provisioned mode with db.serverless instances
  engine_version                  = local.flow.aurora_engine_version
  database_name                   = var.db_name
  master_username                 = var.master_username
  master_password                 = data.aws_secretsmanager_random_password.aurora_master.random_password
  port                            = local.flow.aurora_port
  db_subnet_group_name            = aws_db_subnet_group.aurora.name
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.aurora.name
  vpc_security_group_ids          = [aws_security_group.this["aurora"].id]

  serverlessv2_scaling_configuration {
    min_capacity = var.min_capacity
    max_capacity = var.max_capacity
  }

  storage_encrypted                   = true
  kms_key_id                          = local.data_key
  backup_retention_period             = var.backup_retention_days
  preferred_backup_window             = local.flow.aurora_backup_window
  preferred_maintenance_window        = var.preferred_maintenance_window
  iam_database_authentication_enabled = true
  deletion_protection                 = var.deletion_protection
  copy_tags_to_snapshot               = true
  enabled_cloudwatch_logs_exports     = ["postgresql"]
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${local.names.aurora}-final"
  apply_immediately                   = false

  tags = local.common_tags

  lifecycle {
    # The password comes from a value generated on every read; the first one is
    # kept (it is also the one stored in the Aurora secret).
    ignore_changes = [master_password]

    precondition {
      condition     = var.min_capacity <= var.max_capacity
      error_message = "min_capacity must not be greater than max_capacity."
    }
  }

  # The postgresql log export group is pre-created with KMS and retention.
  depends_on = [aws_cloudwatch_log_group.this]
}

# One Serverless v2 writer in every environment (same graph); capacity scales
# in ACUs between min_capacity and max_capacity. Enhanced Monitoring stays off:
# it would write to the account-wide, unencrypted RDSOSMetrics log group;
# Performance Insights (KMS-encrypted) covers load analysis.
resource "aws_rds_cluster_instance" "aurora" {
  identifier                            = "${local.names.aurora}-1"
  cluster_identifier                    = aws_rds_cluster.aurora.id
  instance_class                        = var.instance_class
  engine                                = aws_rds_cluster.aurora.engine
  engine_version                        = aws_rds_cluster.aurora.engine_version
  db_subnet_group_name                  = aws_db_subnet_group.aurora.name
  publicly_accessible                   = false
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = local.data_key
  performance_insights_retention_period = 7
  auto_minor_version_upgrade            = true
  copy_tags_to_snapshot                 = true
  ca_cert_identifier                    = "rds-ca-rsa2048-g1"
  monitoring_interval                   = 0

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Store: S3 (archive, thumbnails, Athena results)
#
# Every bucket: versioning, SSE-KMS with the data key and an S3 bucket key,
# all public access blocked, BucketOwnerEnforced, TLS-only bucket policy, and a
# lifecycle. Server access logging is not enabled: its target bucket cannot use
# SSE-KMS default encryption, which would leave one unencrypted-by-CMK store;
# CloudTrail data events are the audit trail of choice.
# -----------------------------------------------------------------------------
locals {
  s3_buckets = {
    archive        = "Raw viewing events (raw/) and archived viewing data partitioned by year/month (viewing/)"
    thumbnails     = "Video thumbnails (uploads/<content_id>/<file>), referenced from content_catalog"
    athena_results = "Athena query results of the ${local.names.athena_workgroup} workgroup"
  }

  # transitions: storage class moves; expiration_days: current versions deleted
  # after that many days (null = kept); noncurrent_days: old versions deleted
  # (null = no such action in this rule); abort_multipart: abandoned uploads.
  s3_lifecycle_rules = {
    archive = [
      {
        # Whole bucket: old versions and abandoned multipart uploads go away.
        id              = "bucket-hygiene"
        prefix          = ""
        transitions     = []
        expiration_days = null
        noncurrent_days = local.flow.archive_noncurrent_days
        abort_multipart = true
      },
      {
        # Raw events stay in instant-access tiers: Athena reads them (CTAS archive).
        id              = "raw-events-intelligent-tiering"
        prefix          = local.flow.raw_prefix
        transitions     = [{ days = 0, storage_class = "INTELLIGENT_TIERING" }]
        expiration_days = null
        noncurrent_days = null
        abort_multipart = false
      },
      {
        # Archived viewing data of expired content is cold: Glacier after N days.
        id              = "archived-viewing-to-glacier"
        prefix          = local.flow.archive_prefix
        transitions     = [{ days = 0, storage_class = "INTELLIGENT_TIERING" }, { days = var.lifecycle_glacier_days, storage_class = "GLACIER" }]
        expiration_days = null
        noncurrent_days = null
        abort_multipart = false
      },
    ]
    thumbnails = [
      {
        id              = "thumbnails-intelligent-tiering"
        prefix          = ""
        transitions     = [{ days = 0, storage_class = "INTELLIGENT_TIERING" }]
        expiration_days = null
        noncurrent_days = local.flow.thumbnails_noncurrent_days
        abort_multipart = true
      },
    ]
    athena_results = [
      {
        id              = "expire-query-results"
        prefix          = ""
        transitions     = []
        expiration_days = local.flow.athena_results_expire_days
        noncurrent_days = 1
        abort_multipart = true
      },
    ]
  }
}

resource "aws_s3_bucket" "this" {
  for_each = local.s3_buckets

  bucket = local.bucket_names[each.key]

  tags = merge(local.common_tags, { Name = local.bucket_names[each.key], Purpose = each.value })

  lifecycle {
    precondition {
      condition     = length(local.bucket_names[each.key]) <= 63
      error_message = "The ${each.key} bucket name ${local.bucket_names[each.key]} exceeds 63 characters; shorten project_name or the bucket name variable."
    }
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.data_key
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

data "aws_iam_policy_document" "s3_tls_only" {
  for_each = aws_s3_bucket.this

  # A Deny over every S3 action is the form AWS Config (s3-bucket-ssl-requests-only)
  # and Security Hub S3.5 recognise; no Allow statement here or anywhere uses "*".
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  policy = data.aws_iam_policy_document.s3_tls_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  dynamic "rule" {
    for_each = local.s3_lifecycle_rules[each.key]
    content {
      id     = rule.value.id
      status = "Enabled"

      filter {
        prefix = rule.value.prefix
      }

      dynamic "transition" {
        for_each = rule.value.transitions
        content {
          days          = transition.value.days
          storage_class = transition.value.storage_class
        }
      }

      dynamic "expiration" {
        for_each = rule.value.expiration_days == null ? [] : [rule.value.expiration_days]
        content {
          days = expiration.value
        }
      }

      dynamic "noncurrent_version_expiration" {
        for_each = rule.value.noncurrent_days == null ? [] : [rule.value.noncurrent_days]
        content {
          noncurrent_days = noncurrent_version_expiration.value
        }
      }

      dynamic "abort_incomplete_multipart_upload" {
        for_each = rule.value.abort_multipart ? [local.flow.multipart_abort_days] : []
        content {
          days_after_initiation = abort_incomplete_multipart_upload.value
        }
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

# Archived viewing data that is still in Intelligent-Tiering (before its
# Glacier transition, when lifecycle_glacier_days is longer than 90) moves to
# the archive access tiers when nobody reads it.
resource "aws_s3_bucket_intelligent_tiering_configuration" "archive" {
  bucket = aws_s3_bucket.this["archive"].id
  name   = "archived-viewing"
  status = "Enabled"

  filter {
    prefix = local.flow.archive_prefix
  }

  tiering {
    access_tier = "ARCHIVE_ACCESS"
    days        = 90
  }

  tiering {
    access_tier = "DEEP_ARCHIVE_ACCESS"
    days        = 180
  }
}

# Thumbnail uploads (uploads/ prefix) invoke the validator.
resource "aws_lambda_permission" "thumbnails" {
  statement_id   = "AllowS3ThumbnailUploads"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.this["thumbnail_validator"].function_name
  principal      = "s3.amazonaws.com"
  source_arn     = aws_s3_bucket.this["thumbnails"].arn
  source_account = local.account_id
}

resource "aws_s3_bucket_notification" "thumbnails" {
  bucket = aws_s3_bucket.this["thumbnails"].id

  lambda_function {
    id                  = "validate-thumbnail-uploads"
    lambda_function_arn = aws_lambda_function.this["thumbnail_validator"].arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = local.flow.thumbnail_prefix
  }

  depends_on = [aws_lambda_permission.thumbnails]
}

# -----------------------------------------------------------------------------
# Store: Glue Data Catalog and Athena (raw events table, archive CTAS)
# -----------------------------------------------------------------------------
resource "aws_glue_catalog_database" "viewing" {
  name        = local.names.glue_database
  description = "Viewing events of ${local.name_prefix} for Athena"

  tags = local.common_tags
}

# Unpartitioned on purpose: Athena reads every object under the location,
# including the year=/month=/day= sub-prefixes activity_consumer writes, and the
# nightly CTAS selects by content_id across all dates (no partition to prune).
resource "aws_glue_catalog_table" "raw_viewing_events" {
  name          = local.flow.raw_table
  database_name = aws_glue_catalog_database.viewing.name
  description   = "Raw viewing events (JSON lines) landed by activity_consumer under raw/year=YYYY/month=MM/day=DD/"
  table_type    = "EXTERNAL_TABLE"

  # Partition projection: Athena derives the partitions from the query's year/month/day
  # predicates and the key layout, so a one-day query reads one day of objects and no
  # partition ever has to be registered.
  parameters = {
    EXTERNAL                    = "TRUE"
    classification              = "json"
    "projection.enabled"        = "true"
    "projection.year.type"      = "integer"
    "projection.year.range"     = "2024,2099"
    "projection.year.digits"    = "4"
    "projection.month.type"     = "integer"
    "projection.month.range"    = "1,12"
    "projection.month.digits"   = "2"
    "projection.day.type"       = "integer"
    "projection.day.range"      = "1,31"
    "projection.day.digits"     = "2"
    "storage.location.template" = "s3://${local.bucket_names.archive}/${local.flow.raw_prefix}year=$${year}/month=$${month}/day=$${day}/"
  }

  dynamic "partition_keys" {
    for_each = ["year", "month", "day"]
    content {
      name = partition_keys.value
      type = "string"
    }
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.this["archive"].id}/${local.flow.raw_prefix}"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      name                  = "json"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      parameters = {
        "ignore.malformed.json" = "true"
      }
    }

    dynamic "columns" {
      for_each = [
        { name = "event_id", type = "string" },
        { name = "event_type", type = "string" },
        { name = "user_id", type = "string" },
        { name = "content_id", type = "string" },
        { name = "position_seconds", type = "double" },
        { name = "duration_seconds", type = "double" },
        { name = "client_timestamp", type = "string" },
        { name = "received_at", type = "string" },
      ]
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}

resource "aws_athena_workgroup" "this" {
  name          = local.names.athena_workgroup
  description   = "Viewing-data archive queries of ${local.name_prefix}"
  state         = "ENABLED"
  force_destroy = true # saved query history must not block a destroy

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = local.flow.athena_bytes_scanned_cutoff

    result_configuration {
      output_location = "s3://${aws_s3_bucket.this["athena_results"].id}/results/"

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = local.data_key
      }
    }
  }

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Fan-out: SNS topics (KMS)
#
# watched-complete is a FIFO topic. Spec vs AWS: the spec asks for content-based
# de-duplication on the achievements queue, which only FIFO queues offer, and a
# FIFO queue can only subscribe to a FIFO topic; so the topic and both of its
# queues are FIFO (MessageGroupId = user_id keeps each user's completions in
# order, MessageDeduplicationId = event_id drops retried publishes).
# user-notifications is a standard topic (consumers outside this stack).
# alarms receives the CloudWatch alarm notifications.
# -----------------------------------------------------------------------------
locals {
  sns_topics = {
    complete      = { fifo = true, content_based_deduplication = true, display_name = "Watched complete" }
    notifications = { fifo = false, content_based_deduplication = false, display_name = "User notifications" }
    alarms        = { fifo = false, content_based_deduplication = false, display_name = "Pipeline alarms" }
  }
}

resource "aws_sns_topic" "this" {
  for_each = local.sns_topics

  name                        = local.topic_names[each.key]
  display_name                = each.value.display_name
  fifo_topic                  = each.value.fifo
  content_based_deduplication = each.value.fifo ? each.value.content_based_deduplication : null
  kms_master_key_id           = local.data_key
  # PassThrough: the trace context of the (X-Ray active) publishing Lambdas is
  # carried to the subscribers; Active would add SNS segments but needs an
  # account-wide X-Ray resource policy for sns.amazonaws.com.
  tracing_config = "PassThrough"

  tags = local.common_tags
}

data "aws_iam_policy_document" "sns" {
  for_each = local.sns_topics

  statement {
    sid       = "AccountPrincipalsUseTopic"
    effect    = "Allow"
    actions   = ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic"]
    resources = [aws_sns_topic.this[each.key].arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "alarms" ? [1] : []
    content {
      sid       = "CloudWatchAlarmsPublish"
      effect    = "Allow"
      actions   = ["sns:Publish"]
      resources = [aws_sns_topic.this[each.key].arn]
      principals {
        type        = "Service"
        identifiers = ["cloudwatch.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sns:Publish", "sns:Subscribe"]
    resources = [aws_sns_topic.this[each.key].arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "this" {
  for_each = aws_sns_topic.this

  arn    = each.value.arn
  policy = data.aws_iam_policy_document.sns[each.key].json
}

# -----------------------------------------------------------------------------
# Fan-out: SQS queues (KMS, long polling), DLQs and subscriptions
#
#   analytics    FIFO, DLQ analytics-dlq (FIFO)   filter event_type = complete
#   achievements FIFO + content-based dedup, DLQ achievements-dlq (FIFO)
#                filter event_type = complete and completion_ratio >= 0.9
#   stream_failures  standard: on-failure destination of the stream mappings
#   async_failures   standard: DLQ of asynchronous Lambda invocations and of
#                    the EventBridge schedule target
# -----------------------------------------------------------------------------
locals {
  dead_letter_queues = {
    analytics_dlq    = { name = "${local.name_prefix}-${var.analytics_queue_name}-dlq.fifo", fifo = true, content_based_deduplication = false, source = "analytics" }
    achievements_dlq = { name = "${local.name_prefix}-${var.achievements_queue_name}-dlq.fifo", fifo = true, content_based_deduplication = true, source = "achievements" }
    stream_failures  = { name = "${local.name_prefix}-stream-failures", fifo = false, content_based_deduplication = false, source = null }
    async_failures   = { name = "${local.name_prefix}-async-failures", fifo = false, content_based_deduplication = false, source = null }
  }

  consumer_queues = {
    analytics = {
      name                        = "${local.name_prefix}-${var.analytics_queue_name}.fifo"
      content_based_deduplication = false # the topic's MessageDeduplicationId (event_id) is passed through
      dlq                         = "analytics_dlq"
      filter_policy               = { event_type = ["complete"] }
    }
    achievements = {
      name                        = "${local.name_prefix}-${var.achievements_queue_name}.fifo"
      content_based_deduplication = true
      dlq                         = "achievements_dlq"
      filter_policy               = { event_type = ["complete"], completion_ratio = [{ numeric = [">=", tonumber(local.flow.full_completion_ratio)] }] }
    }
  }

  # Extra Allow statements of each queue policy (every queue also denies non-TLS access).
  queue_policy_senders = {
    analytics        = { service = "sns.amazonaws.com", source_arns = [aws_sns_topic.this["complete"].arn] }
    achievements     = { service = "sns.amazonaws.com", source_arns = [aws_sns_topic.this["complete"].arn] }
    analytics_dlq    = null
    achievements_dlq = null
    stream_failures  = null
    async_failures   = { service = "events.amazonaws.com", source_arns = [aws_cloudwatch_event_rule.expiration.arn, aws_cloudwatch_event_rule.cache_refresh.arn] }
  }

  all_queues = merge(aws_sqs_queue.dead_letter, aws_sqs_queue.consumer)
}

resource "aws_sqs_queue" "dead_letter" {
  for_each = local.dead_letter_queues

  name                              = each.value.name
  fifo_queue                        = each.value.fifo
  content_based_deduplication       = each.value.fifo ? each.value.content_based_deduplication : null
  message_retention_seconds         = local.flow.dlq_retention_s
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = local.data_key
  kms_data_key_reuse_period_seconds = 300

  tags = merge(local.common_tags, { Name = each.value.name })
}

resource "aws_sqs_queue" "consumer" {
  for_each = local.consumer_queues

  name                              = each.value.name
  fifo_queue                        = true
  content_based_deduplication       = each.value.content_based_deduplication
  deduplication_scope               = "messageGroup"      # high-throughput FIFO:
  fifo_throughput_limit             = "perMessageGroupId" # limits apply per user_id
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  message_retention_seconds         = var.message_retention_seconds
  receive_wait_time_seconds         = 20 # long polling
  kms_master_key_id                 = local.data_key
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter[each.value.dlq].arn
    maxReceiveCount     = local.flow.dlq_max_receive_count
  })

  tags = merge(local.common_tags, { Name = each.value.name })
}

# DLQs accept redrives only from their own source queue; the failure queues
# (targets of Lambda and EventBridge, not of SQS redrive) accept none.
resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  for_each = local.dead_letter_queues

  queue_url = aws_sqs_queue.dead_letter[each.key].id
  redrive_allow_policy = each.value.source == null ? jsonencode({ redrivePermission = "denyAll" }) : jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.consumer[each.value.source].arn]
  })
}

data "aws_iam_policy_document" "sqs" {
  for_each = local.queue_policy_senders

  dynamic "statement" {
    for_each = each.value == null ? [] : [each.value]
    content {
      sid       = "AllowOnlyThisSource"
      effect    = "Allow"
      actions   = ["sqs:SendMessage"]
      resources = [local.all_queues[each.key].arn]
      principals {
        type        = "Service"
        identifiers = [statement.value.service]
      }
      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = statement.value.source_arns
      }
    }
  }

  # Deny over every SQS action without TLS (a Deny; no Allow uses "*").
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [local.all_queues[each.key].arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "this" {
  for_each = local.queue_policy_senders

  queue_url = local.all_queues[each.key].id
  policy    = data.aws_iam_policy_document.sqs[each.key].json
}

resource "aws_sns_topic_subscription" "queue" {
  for_each = local.consumer_queues

  topic_arn            = aws_sns_topic.this["complete"].arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.consumer[each.key].arn
  raw_message_delivery = true # queue bodies are the published JSON
  filter_policy_scope  = "MessageAttributes"
  filter_policy        = jsonencode(each.value.filter_policy)

  depends_on = [aws_sqs_queue_policy.this]
}

# -----------------------------------------------------------------------------
# Batch: nightly content expiration (EventBridge schedule -> Step Functions)
#
# FindExpired (Aurora, one page of licences expired in the lookback window) ->
# Parallel[ pages: Parallel[MarkExpired (content_catalog), PurgeCache (Redis)]
# -> next page..., archive: ArchiveViews (Athena CTAS of yesterday's raw
# partition -> S3) -> Wait -> CheckArchive until the query ends ]; every task
# retries Lambda service errors, throttling and timeouts with exponential
# backoff; anything else, or a failed archive query, fails the execution.
# -----------------------------------------------------------------------------
resource "aws_cloudwatch_event_rule" "expiration" {
  name                = local.names.schedule_rule
  description         = "Starts the content-expiration state machine of ${local.name_prefix}"
  schedule_expression = var.expiration_schedule_expression
  state               = "ENABLED"

  tags = local.common_tags
}

resource "aws_cloudwatch_event_target" "expiration" {
  rule      = aws_cloudwatch_event_rule.expiration.name
  target_id = "content-expiration"
  arn       = aws_sfn_state_machine.expiration.arn
  role_arn  = aws_iam_role.service["events"].arn
  input     = jsonencode({})

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.dead_letter["async_failures"].arn
  }

  depends_on = [aws_iam_role_policy.service]
}

# -----------------------------------------------------------------------------
# Batch: recommendation-cache refresh (EventBridge schedule -> cache_refresh)
#
# Aurora's catalogue, completion statistics and co-viewing become the Redis
# content:* hashes and cf:* neighbour sets the recommendations function ranks
# from; a failed delivery is retried by EventBridge, then parked in
# async_failures.
# -----------------------------------------------------------------------------
resource "aws_cloudwatch_event_rule" "cache_refresh" {
  name                = local.names.refresh_rule
  description         = "Refreshes the recommendation cache of ${local.name_prefix} from Aurora"
  schedule_expression = var.cache_refresh_schedule_expression
  state               = "ENABLED"

  tags = local.common_tags
}

resource "aws_cloudwatch_event_target" "cache_refresh" {
  rule      = aws_cloudwatch_event_rule.cache_refresh.name
  target_id = "cache-refresh"
  arn       = aws_lambda_function.this["cache_refresh"].arn
  input     = jsonencode({})

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 3
  }

  dead_letter_config {
    arn = aws_sqs_queue.dead_letter["async_failures"].arn
  }

  depends_on = [aws_lambda_permission.cache_refresh]
}

resource "aws_lambda_permission" "cache_refresh" {
  statement_id  = "AllowCacheRefreshSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["cache_refresh"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.cache_refresh.arn
}

resource "aws_sfn_state_machine" "expiration" {
  name     = local.names.state_machine
  type     = "STANDARD"
  role_arn = aws_iam_role.service["states"].arn

  definition = templatefile("${path.module}/templates/expiration.asl.json.tftpl", {
    partition                 = local.partition
    find_function_arn         = local.function_arns["expiration_find"]
    mark_function_arn         = local.function_arns["expiration_mark"]
    purge_function_arn        = local.function_arns["expiration_purge"]
    archive_function_arn      = local.function_arns["expiration_archive"]
    task_timeout_seconds      = local.flow.sfn_task_timeout_s
    execution_timeout_seconds = local.flow.sfn_execution_timeout_s
    lookback_days             = local.flow.expiration_lookback_days
    archive_poll_seconds      = local.flow.archive_poll_s
    lambda_retry = jsonencode([{
      ErrorEquals     = ["Lambda.ServiceException", "Lambda.TooManyRequestsException", "States.Timeout"]
      IntervalSeconds = 2
      MaxAttempts     = 3
      BackoffRate     = 2
    }])
  })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.this["state_machine"].arn}:*"
    level                  = "ERROR"
    include_execution_data = true # content ids and run dates only; no personal data
  }

  tracing_configuration {
    enabled = true
  }

  encryption_configuration {
    type                              = "CUSTOMER_MANAGED_KMS_KEY"
    kms_key_id                        = local.data_key
    kms_data_key_reuse_period_seconds = 300
  }

  tags = local.common_tags

  # The role needs its log-delivery and KMS permissions at creation time; the definition names
  # the functions by ARN (built from their names, so a plan shows the whole definition), and
  # they exist before the first execution can invoke them.
  depends_on = [aws_iam_role_policy.service, aws_lambda_function.this]
}

# -----------------------------------------------------------------------------
# Observe: log groups (KMS logs key, var.log_retention_days), created before
# whatever writes to them
# -----------------------------------------------------------------------------
locals {
  log_group_names = merge(
    { for k, name in local.function_names : k => "/aws/lambda/${name}" },
    {
      api_access        = "/aws/apigateway/${local.names.api}/access"
      api_execution     = "API-Gateway-Execution-Logs_${aws_api_gateway_rest_api.this.id}/${var.stage_name}"
      state_machine     = "/aws/vendedlogs/states/${local.names.state_machine}"
      vpc_flow_logs     = "/aws/vpc/${local.name_prefix}/flow-logs"
      aurora_postgresql = "/aws/rds/cluster/${local.names.aurora}/postgresql"
    },
  )
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.log_group_names

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this["logs"].arn

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Observe: CloudWatch alarms (notify the alarms topic)
#
#   api_latency_p95               API Gateway Latency p95 > var.alarm_latency_threshold
#   recommendations_duration_p95  recommendations Duration p95
#   activity_hot_partitions       user_activity WriteThrottleEvents: on-demand
#                                 tables throttle writes only when one partition
#                                 is hot; Contributor Insights names the keys
#   kinesis_getrecords_throttled  ReadProvisionedThroughputExceeded (GetRecords throttling)
#   redis_memory_fragmentation    MemoryFragmentationRatio (separate resource below)
#   aurora_active_transactions    Spec vs AWS: ActiveTransactions is published by
#                                 Aurora MySQL only; for Aurora PostgreSQL the
#                                 equivalent is DBLoad (average active sessions =
#                                 transactions/statements running at once), which
#                                 Performance Insights publishes to CloudWatch
#   sqs_oldest_message_<queue>    ApproximateAgeOfOldestMessage of both consumer queues
#   sfn_executions_failed         Step Functions ExecutionsFailed
#   dlq_messages_<queue>          anything parked in a DLQ or failure queue
# Thresholds: var.alarm_latency_threshold and local.capacity (per environment).
# -----------------------------------------------------------------------------
locals {
  alarms = merge(
    {
      api_latency_p95 = {
        description        = "API Gateway p95 latency of ${local.names.api} above var.alarm_latency_threshold (ms)"
        namespace          = "AWS/ApiGateway"
        metric_name        = "Latency"
        dimensions         = { ApiName = local.names.api, Stage = var.stage_name }
        statistic          = null
        extended_statistic = "p95"
        threshold          = var.alarm_latency_threshold
        comparison         = "GreaterThanThreshold"
      }
      recommendations_duration_p95 = {
        description        = "Recommendation engine p95 duration above the per-env threshold (ms)"
        namespace          = "AWS/Lambda"
        metric_name        = "Duration"
        dimensions         = { FunctionName = local.function_names["recommendations"] }
        statistic          = null
        extended_statistic = "p95"
        threshold          = local.capacity.alarm_recommendations_p95_ms
        comparison         = "GreaterThanThreshold"
      }
      activity_hot_partitions = {
        description        = "user_activity write throttling (hot partition)"
        namespace          = "AWS/DynamoDB"
        metric_name        = "WriteThrottleEvents"
        dimensions         = { TableName = local.table_names.activity }
        statistic          = "Sum"
        extended_statistic = null
        threshold          = local.capacity.alarm_activity_throttle_events
        comparison         = "GreaterThanThreshold"
      }
      kinesis_getrecords_throttled = {
        description        = "GetRecords throttling on ${local.names.stream}"
        namespace          = "AWS/Kinesis"
        metric_name        = "ReadProvisionedThroughputExceeded"
        dimensions         = { StreamName = local.names.stream }
        statistic          = "Sum"
        extended_statistic = null
        threshold          = local.capacity.alarm_kinesis_read_throttled
        comparison         = "GreaterThanThreshold"
      }
      aurora_active_transactions = {
        description        = "Aurora PostgreSQL active transactions/sessions (DBLoad) above the per-env threshold"
        namespace          = "AWS/RDS"
        metric_name        = "DBLoad"
        dimensions         = { DBInstanceIdentifier = "${local.names.aurora}-1" }
        statistic          = "Average"
        extended_statistic = null
        threshold          = local.capacity.alarm_aurora_db_load
        comparison         = "GreaterThanThreshold"
      }
      sfn_executions_failed = {
        description        = "Content-expiration executions failed"
        namespace          = "AWS/States"
        metric_name        = "ExecutionsFailed"
        dimensions         = { StateMachineArn = local.state_machine_arn }
        statistic          = "Sum"
        extended_statistic = null
        threshold          = local.capacity.alarm_sfn_executions_failed
        comparison         = "GreaterThanOrEqualToThreshold"
      }
    },
    {
      for k, q in local.consumer_queues : "sqs_oldest_message_${k}" => {
        description        = "Oldest message in ${q.name} older than the per-env threshold (s)"
        namespace          = "AWS/SQS"
        metric_name        = "ApproximateAgeOfOldestMessage"
        dimensions         = { QueueName = q.name }
        statistic          = "Maximum"
        extended_statistic = null
        threshold          = local.capacity.alarm_sqs_oldest_message_s
        comparison         = "GreaterThanThreshold"
      }
    },
    {
      for k, q in local.dead_letter_queues : "dlq_messages_${k}" => {
        description        = "Messages parked in ${q.name}"
        namespace          = "AWS/SQS"
        metric_name        = "ApproximateNumberOfMessagesVisible"
        dimensions         = { QueueName = q.name }
        statistic          = "Maximum"
        extended_statistic = null
        threshold          = local.capacity.alarm_dlq_visible_messages
        comparison         = "GreaterThanOrEqualToThreshold"
      }
    },
  )

  alarm_names = merge(
    { for k in keys(local.alarms) : k => "${local.name_prefix}-${replace(k, "_", "-")}" },
    { redis_memory_fragmentation = "${local.name_prefix}-redis-memory-fragmentation" },
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = local.alarm_names[each.key]
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric_name
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  extended_statistic  = each.value.extended_statistic
  period              = local.flow.alarm_period_s
  evaluation_periods  = local.flow.alarm_evaluation_periods
  datapoints_to_alarm = local.flow.alarm_datapoints_to_alarm
  threshold           = each.value.threshold
  comparison_operator = each.value.comparison
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this["alarms"].arn]
  ok_actions          = [aws_sns_topic.this["alarms"].arn]

  tags = local.common_tags

  lifecycle {
    # A run ends at its timeout: a duration alarm at or above it could never fire.
    precondition {
      condition     = each.key != "recommendations_duration_p95" || local.capacity.alarm_recommendations_p95_ms < var.timeout_s * 1000
      error_message = "timeout_s (${var.timeout_s} s) must exceed the recommendations duration alarm's threshold (${local.capacity.alarm_recommendations_p95_ms} ms), or that alarm can never fire."
    }
  }
}

# ElastiCache publishes MemoryFragmentationRatio per node (CacheClusterId
# <group>-001, -002, ...), so one alarm takes the maximum over the nodes with
# metric math. It lists every node id num_cache_clusters allows (1-6): ids of
# nodes that do not exist have no data and MAX ignores them, so the alarm is the
# same in every environment whatever its node count.
resource "aws_cloudwatch_metric_alarm" "redis_memory_fragmentation" {
  alarm_name          = local.alarm_names["redis_memory_fragmentation"]
  alarm_description   = "Redis memory fragmentation ratio above the per-env threshold on any node of ${local.names.redis}"
  evaluation_periods  = local.flow.alarm_evaluation_periods
  datapoints_to_alarm = local.flow.alarm_datapoints_to_alarm
  threshold           = local.capacity.alarm_redis_fragmentation_ratio
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this["alarms"].arn]
  ok_actions          = [aws_sns_topic.this["alarms"].arn]

  metric_query {
    id          = "fragmentation"
    expression  = "MAX(METRICS())"
    label       = "Max MemoryFragmentationRatio"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = range(6) # the maximum of num_cache_clusters' validation
    content {
      id          = "node${metric_query.value + 1}"
      return_data = false

      metric {
        namespace   = "AWS/ElastiCache"
        metric_name = "MemoryFragmentationRatio"
        dimensions  = { CacheClusterId = format("%s-%03d", local.names.redis, metric_query.value + 1) }
        period      = local.flow.alarm_period_s
        stat        = "Maximum"
      }
    }
  }

  tags = local.common_tags

  depends_on = [aws_elasticache_replication_group.cache]
}

# -----------------------------------------------------------------------------
# Observe: CloudWatch Logs Insights queries for debugging viewing patterns
# (handlers log JSON through Powertools: level, service, user_id, content_id,
# event_type, completion_ratio; with the JSON log format Lambda's platform.report
# events carry record.metrics.durationMs and record.status, "timeout" included)
# -----------------------------------------------------------------------------
locals {
  lambda_log_groups = [for k in keys(local.lambda_functions) : local.log_group_names[k]]

  log_queries = {
    top-content-by-events = {
      log_groups = [local.log_group_names["event_processor"], local.log_group_names["activity_consumer"]]
      query      = <<-EOT
        fields @timestamp, content_id, event_type
        | filter ispresent(content_id) and ispresent(event_type)
        | stats count(*) as events, count_distinct(user_id) as viewers by content_id, event_type
        | sort events desc
        | limit 50
      EOT
    }
    user-event-timeline = {
      log_groups = [local.log_group_names["event_processor"], local.log_group_names["activity_consumer"], local.log_group_names["recommendations"]]
      query      = <<-EOT
        fields @timestamp, user_id, event_type, content_id, position_seconds, duration_seconds, service
        | filter ispresent(user_id)
        | sort user_id asc, @timestamp asc
        | limit 1000
      EOT
    }
    completion-funnel = {
      log_groups = [local.log_group_names["completion_detector"], local.log_group_names["achievements_consumer"], local.log_group_names["analytics_consumer"]]
      query      = <<-EOT
        fields @timestamp, content_id, completion_ratio, service
        | filter ispresent(content_id)
        | stats count(*) as completions, avg(completion_ratio) as avg_ratio by content_id, service
        | sort completions desc
        | limit 50
      EOT
    }
    errors-by-function = {
      log_groups = local.lambda_log_groups
      query      = <<-EOT
        fields @timestamp, @log, level, service, message
        | filter level = "ERROR" or level = "CRITICAL" or record.status = "timeout" or @message like /Task timed out/
        | stats count(*) as errors by @log, service
        | sort errors desc
      EOT
    }
    slow-recommendations = {
      log_groups = [local.log_group_names["recommendations"]]
      query      = <<-EOT
        filter type = "platform.report"
        | stats count(*) as invocations, avg(record.metrics.durationMs) as avg_ms, pct(record.metrics.durationMs, 95) as p95_ms, max(record.metrics.durationMs) as max_ms by bin(5m)
        | sort max_ms desc
      EOT
    }
    api-errors = {
      log_groups = [local.log_group_names["api_access"]]
      query      = <<-EOT
        fields @timestamp, status, resourcePath, errorMessage, requestId
        | filter status >= 400
        | stats count(*) as requests by status, resourcePath, errorMessage
        | sort requests desc
      EOT
    }
  }
}

resource "aws_cloudwatch_query_definition" "this" {
  for_each = local.log_queries

  name            = "${local.name_prefix}/viewing/${each.key}"
  log_group_names = each.value.log_groups
  query_string    = each.value.query

  depends_on = [aws_cloudwatch_log_group.this]
}

# -----------------------------------------------------------------------------
# Outputs (no secret values are output; ARNs of secrets are not secret)
# -----------------------------------------------------------------------------
output "api_invoke_url" {
  description = "Invoke URL of the API stage; POST to <url>/watch, /pause, /complete."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "api_endpoints" {
  description = "Full URL of each ingestion route."
  value       = { for r in local.api_routes : r => "${aws_api_gateway_stage.this.invoke_url}/${r}" }
}

output "api_id" {
  description = "REST API id."
  value       = aws_api_gateway_rest_api.this.id
}

output "kinesis_stream_arn" {
  description = "ARN of the viewing-events stream."
  value       = aws_kinesis_stream.activity.arn
}

output "kinesis_stream_name" {
  description = "Name of the viewing-events stream."
  value       = aws_kinesis_stream.activity.name
}

output "dynamodb_table_names" {
  description = "DynamoDB table names by role (activity, recommendations, achievements, catalog)."
  value       = { for k, t in aws_dynamodb_table.this : k => t.name }
}

output "dynamodb_table_arns" {
  description = "DynamoDB table ARNs by role."
  value       = { for k, t in aws_dynamodb_table.this : k => t.arn }
}

output "dynamodb_activity_stream_arn" {
  description = "Stream ARN of user_activity (source of the recommendations mapping)."
  value       = aws_dynamodb_table.this["activity"].stream_arn
}

output "sns_topic_arns" {
  description = "SNS topic ARNs (complete = watched-complete FIFO, notifications, alarms)."
  value       = { for k, t in aws_sns_topic.this : k => t.arn }
}

output "sqs_queue_urls" {
  description = "SQS queue URLs: consumer queues, their DLQs, stream_failures and async_failures."
  value       = { for k, q in local.all_queues : k => q.url }
}

output "sqs_queue_arns" {
  description = "SQS queue ARNs by the same keys as sqs_queue_urls."
  value       = { for k, q in local.all_queues : k => q.arn }
}

output "aurora_cluster_endpoint" {
  description = "Aurora writer endpoint."
  value       = aws_rds_cluster.aurora.endpoint
}

output "aurora_reader_endpoint" {
  description = "Aurora reader endpoint."
  value       = aws_rds_cluster.aurora.reader_endpoint
}

output "aurora_port" {
  description = "Aurora port."
  value       = aws_rds_cluster.aurora.port
}

output "aurora_cluster_identifier" {
  description = "Aurora cluster identifier."
  value       = aws_rds_cluster.aurora.cluster_identifier
}

output "redis_primary_endpoint" {
  description = "Redis primary endpoint (TLS, AUTH)."
  value       = aws_elasticache_replication_group.cache.primary_endpoint_address
}

output "redis_reader_endpoint" {
  description = "Redis reader endpoint."
  value       = aws_elasticache_replication_group.cache.reader_endpoint_address
}

output "redis_port" {
  description = "Redis port."
  value       = aws_elasticache_replication_group.cache.port
}

output "state_machine_arn" {
  description = "ARN of the content-expiration state machine."
  value       = aws_sfn_state_machine.expiration.arn
}

output "event_rule_name" {
  description = "Name of the nightly EventBridge rule."
  value       = aws_cloudwatch_event_rule.expiration.name
}

output "cache_refresh_rule_name" {
  description = "Name of the EventBridge rule that refreshes the recommendation cache."
  value       = aws_cloudwatch_event_rule.cache_refresh.name
}

output "lambda_function_arns" {
  description = "Lambda function ARNs by contract key."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "lambda_function_names" {
  description = "Lambda function names by contract key."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "lambda_environment_variable_names" {
  description = "Names of the environment variables each function receives (values are in its configuration)."
  value       = { for k, variables in local.lambda_environment : k => sort(keys(variables)) }
}

output "lambda_layer_arn" {
  description = "ARN (with version) of the shared layer."
  value       = aws_lambda_layer_version.common.arn
}

output "s3_bucket_names" {
  description = "S3 bucket names (archive, thumbnails, athena_results)."
  value       = { for k, b in aws_s3_bucket.this : k => b.id }
}

output "athena_workgroup" {
  description = "Athena workgroup name."
  value       = aws_athena_workgroup.this.name
}

output "glue_database_name" {
  description = "Glue database of the viewing events."
  value       = aws_glue_catalog_database.viewing.name
}

output "glue_table_name" {
  description = "Glue table over the raw viewing events."
  value       = aws_glue_catalog_table.raw_viewing_events.name
}

output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.this.id
}

output "public_subnet_ids" {
  description = "Public subnet ids by zone key."
  value       = { for k, s in aws_subnet.public : k => s.id }
}

output "private_subnet_ids" {
  description = "Private subnet ids by zone key."
  value       = { for k, s in aws_subnet.private : k => s.id }
}

output "security_group_ids" {
  description = "Security group ids (lambda, redis, aurora, endpoints)."
  value       = { for k, sg in aws_security_group.this : k => sg.id }
}

output "vpc_endpoint_ids" {
  description = "VPC endpoint ids by service."
  value       = merge({ for k, e in aws_vpc_endpoint.gateway : k => e.id }, { for k, e in aws_vpc_endpoint.interface : k => e.id })
}

output "secret_arns" {
  description = "Secrets Manager ARNs (redis auth token, aurora credentials); the values are never output."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.arn }
}

output "kms_key_arns" {
  description = "Customer-managed KMS key ARNs (data, logs)."
  value       = { for k, key in aws_kms_key.this : k => key.arn }
}

output "sagemaker_endpoint_arn" {
  description = "ARN of the referenced SageMaker endpoint (owned by the ML team)."
  value       = local.sagemaker_endpoint_arn
}

output "log_group_names" {
  description = "CloudWatch log group names by key (function keys, api_access, api_execution, state_machine, vpc_flow_logs, aurora_postgresql)."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "alarm_names" {
  description = "CloudWatch alarm names by key."
  value       = merge({ for k, a in aws_cloudwatch_metric_alarm.this : k => a.alarm_name }, { redis_memory_fragmentation = aws_cloudwatch_metric_alarm.redis_memory_fragmentation.alarm_name })
}

output "logs_insights_query_names" {
  description = "Logs Insights saved query names by key."
  value       = { for k, q in aws_cloudwatch_query_definition.this : k => q.name }
}

# -----------------------------------------------------------------------------
# Example variable files (the same content as tfvars/dev.tfvars,
# tfvars/staging.tfvars and tfvars/prod.tfvars). Only capacities differ.
# -----------------------------------------------------------------------------
#
# ---- dev.tfvars ----
# # dev: minimal and cheap. Functional testing only: a few players, single-digit
# # events per second. Only capacity values differ from staging/prod.
# env          = "dev"
# aws_region   = "us-east-1"
# project_name = "tap"
# owner        = "platform-team"
# cost_center  = "streaming-analytics"
# common_tags  = { DataClassification = "internal" }
#
# # Network (same topology and CIDRs in every environment; env is in every name)
# vpc_cidr               = "10.40.0.0/16"
# public_subnet_cidrs    = ["10.40.0.0/24", "10.40.1.0/24", "10.40.2.0/24"]
# private_subnet_cidrs   = ["10.40.16.0/20", "10.40.32.0/20", "10.40.48.0/20"]
# num_availability_zones = 3
#
# # API Gateway
# api_name             = "viewing-api"
# stage_name           = "v1"
# throttle_rate_limit  = 50
# throttle_burst_limit = 100
#
# # Kinesis: 1 shard = 1000 records/s, far above dev traffic
# activity_stream_name = "viewing-events"
# stream_mode          = "PROVISIONED"
# shard_count          = 1
# retention_hours      = 24
#
# # DynamoDB (on-demand: pay per request)
# activity_table           = "user_activity"
# recommendations_table    = "user_recommendations"
# achievements_table       = "user_achievements"
# catalog_table            = "content_catalog"
# billing_mode             = "PAY_PER_REQUEST"
# rcu                      = 5
# wcu                      = 5
# ttl_attribute            = "expires_at"
# recommendation_ttl_hours = 24
# deletion_protection      = true
#
# # Lambda
# event_processor_memory = 256
# recommendations_memory = 512
# analytics_memory       = 256
# achievements_memory    = 256
# expiration_memory      = 256
# timeout_s              = 30
# runtime                = "python3.12"
#
# # Redis: one small node (no replica, so no automatic failover)
# node_type          = "cache.t4g.micro"
# num_cache_clusters = 1
# engine_version     = "7.1"
# auth_token_enabled = true
#
# # Aurora Serverless v2
# db_name                      = "streaming"
# master_username              = "tapadmin"
# instance_class               = "db.serverless"
# min_capacity                 = 0.5
# max_capacity                 = 2
# backup_retention_days        = 7
# preferred_maintenance_window = "sun:05:00-sun:06:00"
#
# # SageMaker endpoint (owned by the ML team)
# recommendations_endpoint_name = "tap-dev-recommendations"
#
# # SNS / SQS
# complete_topic             = "watched-complete"
# notifications_topic        = "user-notifications"
# analytics_queue_name       = "analytics"
# achievements_queue_name    = "achievements"
# visibility_timeout_seconds = 360
# message_retention_seconds  = 345600
#
# # EventBridge: nightly at 03:00 UTC
# expiration_schedule_expression = "cron(0 3 * * ? *)"
#
# # EventBridge: recommendation-cache refresh (Aurora -> Redis)
# cache_refresh_schedule_expression = "rate(1 hour)"
#
# # S3 / Athena
# archive_bucket_name    = "archive"
# thumbnails_bucket_name = "thumbnails"
# lifecycle_glacier_days = 90
# workgroup_name         = "analytics"
# output_bucket          = "athena-results"
#
# # CloudWatch / Secrets Manager
# log_retention_days          = 365
# alarm_latency_threshold     = 3000
# secret_recovery_window_days = 7
#
# ---- staging.tfvars ----
# # staging: mid-sized, for release rehearsals and load tests at about a quarter
# # of prod peak (~500 events/s). Only capacity values differ from dev/prod.
# env          = "staging"
# aws_region   = "us-east-1"
# project_name = "tap"
# owner        = "platform-team"
# cost_center  = "streaming-analytics"
# common_tags  = { DataClassification = "internal" }
#
# # Network (same topology and CIDRs in every environment; env is in every name)
# vpc_cidr               = "10.40.0.0/16"
# public_subnet_cidrs    = ["10.40.0.0/24", "10.40.1.0/24", "10.40.2.0/24"]
# private_subnet_cidrs   = ["10.40.16.0/20", "10.40.32.0/20", "10.40.48.0/20"]
# num_availability_zones = 3
#
# # API Gateway
# api_name             = "viewing-api"
# stage_name           = "v1"
# throttle_rate_limit  = 1000
# throttle_burst_limit = 2000
#
# # Kinesis: ~500 events/s -> 1 shard by records, x2 headroom = 2 shards
# activity_stream_name = "viewing-events"
# stream_mode          = "PROVISIONED"
# shard_count          = 2
# retention_hours      = 24
#
# # DynamoDB (on-demand: pay per request)
# activity_table           = "user_activity"
# recommendations_table    = "user_recommendations"
# achievements_table       = "user_achievements"
# catalog_table            = "content_catalog"
# billing_mode             = "PAY_PER_REQUEST"
# rcu                      = 5
# wcu                      = 5
# ttl_attribute            = "expires_at"
# recommendation_ttl_hours = 24
# deletion_protection      = true
#
# # Lambda
# event_processor_memory = 512
# recommendations_memory = 1024
# analytics_memory       = 512
# achievements_memory    = 512
# expiration_memory      = 512
# timeout_s              = 30
# runtime                = "python3.12"
#
# # Redis: primary + 1 replica in two zones (automatic failover on)
# node_type          = "cache.t4g.small"
# num_cache_clusters = 2
# engine_version     = "7.1"
# auth_token_enabled = true
#
# # Aurora Serverless v2
# db_name                      = "streaming"
# master_username              = "tapadmin"
# instance_class               = "db.serverless"
# min_capacity                 = 0.5
# max_capacity                 = 8
# backup_retention_days        = 7
# preferred_maintenance_window = "sun:05:00-sun:06:00"
#
# # SageMaker endpoint (owned by the ML team)
# recommendations_endpoint_name = "tap-staging-recommendations"
#
# # SNS / SQS
# complete_topic             = "watched-complete"
# notifications_topic        = "user-notifications"
# analytics_queue_name       = "analytics"
# achievements_queue_name    = "achievements"
# visibility_timeout_seconds = 360
# message_retention_seconds  = 345600
#
# # EventBridge: nightly at 03:00 UTC
# expiration_schedule_expression = "cron(0 3 * * ? *)"
#
# # EventBridge: recommendation-cache refresh (Aurora -> Redis)
# cache_refresh_schedule_expression = "rate(1 hour)"
#
# # S3 / Athena
# archive_bucket_name    = "archive"
# thumbnails_bucket_name = "thumbnails"
# lifecycle_glacier_days = 90
# workgroup_name         = "analytics"
# output_bucket          = "athena-results"
#
# # CloudWatch / Secrets Manager
# log_retention_days          = 365
# alarm_latency_threshold     = 1500
# secret_recovery_window_days = 7
#
# ---- prod.tfvars ----
# # prod: sized for the stated peak with 2x headroom.
# # Peak assumption: 60,000 concurrent viewers, each player posting a /watch
# # heartbeat every 30 s plus pause/complete events -> ~2,000 events/s of
# # ~0.5 KB (~1 MB/s). Kinesis: 1,000 records/s and 1 MB/s of writes per shard
# # -> 2 shards, x2 headroom = 4 shards; API throttle 4,000 req/s (burst 8,000);
# # each Kinesis consumer runs 4 shards x parallelization 2 = 8 concurrent
# # batches. DynamoDB stays on-demand (spiky evening peaks; ~2k event items/s
# # written transactionally is well inside on-demand table limits). Redis:
# # primary + 2 replicas, one per zone. Aurora: 2-32 ACUs. Only capacity values
# # differ from dev/staging.
# env          = "prod"
# aws_region   = "us-east-1"
# project_name = "tap"
# owner        = "platform-team"
# cost_center  = "streaming-analytics"
# common_tags  = { DataClassification = "internal" }
#
# # Network (same topology and CIDRs in every environment; env is in every name)
# vpc_cidr               = "10.40.0.0/16"
# public_subnet_cidrs    = ["10.40.0.0/24", "10.40.1.0/24", "10.40.2.0/24"]
# private_subnet_cidrs   = ["10.40.16.0/20", "10.40.32.0/20", "10.40.48.0/20"]
# num_availability_zones = 3
#
# # API Gateway
# api_name             = "viewing-api"
# stage_name           = "v1"
# throttle_rate_limit  = 4000
# throttle_burst_limit = 8000
#
# # Kinesis: 2,000 events/s -> 2 shards by records, x2 headroom = 4 shards
# activity_stream_name = "viewing-events"
# stream_mode          = "PROVISIONED"
# shard_count          = 4
# retention_hours      = 24
#
# # DynamoDB (on-demand: pay per request)
# activity_table           = "user_activity"
# recommendations_table    = "user_recommendations"
# achievements_table       = "user_achievements"
# catalog_table            = "content_catalog"
# billing_mode             = "PAY_PER_REQUEST"
# rcu                      = 5
# wcu                      = 5
# ttl_attribute            = "expires_at"
# recommendation_ttl_hours = 24
# deletion_protection      = true
#
# # Lambda
# event_processor_memory = 1024
# recommendations_memory = 2048
# analytics_memory       = 1024
# achievements_memory    = 1024
# expiration_memory      = 1024
# timeout_s              = 60
# runtime                = "python3.12"
#
# # Redis: primary + 2 replicas, one per zone (automatic failover, Multi-AZ)
# node_type          = "cache.r7g.large"
# num_cache_clusters = 3
# engine_version     = "7.1"
# auth_token_enabled = true
#
# # Aurora Serverless v2
# db_name                      = "streaming"
# master_username              = "tapadmin"
# instance_class               = "db.serverless"
# min_capacity                 = 2
# max_capacity                 = 32
# backup_retention_days        = 7
# preferred_maintenance_window = "sun:05:00-sun:06:00"
#
# # SageMaker endpoint (owned by the ML team)
# recommendations_endpoint_name = "tap-prod-recommendations"
#
# # SNS / SQS
# complete_topic             = "watched-complete"
# notifications_topic        = "user-notifications"
# analytics_queue_name       = "analytics"
# achievements_queue_name    = "achievements"
# visibility_timeout_seconds = 360
# message_retention_seconds  = 345600
#
# # EventBridge: nightly at 03:00 UTC
# expiration_schedule_expression = "cron(0 3 * * ? *)"
#
# # EventBridge: recommendation-cache refresh (Aurora -> Redis)
# cache_refresh_schedule_expression = "rate(15 minutes)"
#
# # S3 / Athena
# archive_bucket_name    = "archive"
# thumbnails_bucket_name = "thumbnails"
# lifecycle_glacier_days = 90
# workgroup_name         = "analytics"
# output_bucket          = "athena-results"
#
# # CloudWatch / Secrets Manager
# log_retention_days          = 365
# alarm_latency_threshold     = 1000
# secret_recovery_window_days = 7
