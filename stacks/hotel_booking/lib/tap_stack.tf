###############################################################################
# tap_stack.tf: global hotel booking, one topology for dev, staging and prod.
#
# Data flow (the file is ordered the same way):
#   HTTP API (POST /book, GET /availability/{property_id})
#     -> booking_handler -> DynamoDB inventory (global table, conditional write on version)
#                        -> SNS inventory_updates (message attribute pms_id)
#   DynamoDB stream -> cache_updater -> Redis avail:{property_id} (per property, TTL)
#   SNS inventory_updates -> SQS <pms>-pms (one per PMS integration, DLQ)
#     -> pms_sync_worker (backoff, circuit breaker in DynamoDB) -> PMS API, Aurora pms_inventory
#   EventBridge (every 5 min) -> Step Functions: reconciliation_checker
#     (table vs cache vs replicas vs Aurora reader) -> overbooking_resolver when drift is found
#
# SLA targets (not enforced in code; they size what is built here):
#   ~70,000 bookings/min (~1,200 RPS sustained, ~2,000 RPS burst); booking path < 400 ms P95;
#   replication < 5 s typically (alarm > 10 s); cache < 1 s P95 after a change;
#   SNS -> SQS -> PMS attempted < 60 s; hot bookings rechecked < 30 s, audit every 5 min
#   finishing < 2 min; overbooking detected < 5 s, reassigned < 60 s, pushed to the PMS
#   < 2 min, otherwise an alarm for human ops.
#
# Parity rule: every resource address exists in every environment; only capacity values
# from tfvars/<env>.tfvars differ.
###############################################################################

# -----------------------------------------------------------------------------
# Terraform and providers (provider configuration lives in provider.tf)
# -----------------------------------------------------------------------------
terraform {
  required_version = ">= 1.6"

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
# Variables: region, naming and tags
# -----------------------------------------------------------------------------
variable "aws_region" {
  description = "Primary region of the stack (provider.tf reads it); bookings are written here."
  type        = string
  default     = "us-west-2"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as us-west-2."
  }
}

variable "project_name" {
  description = "Project name, the first part of every resource name."
  type        = string
  default     = "global-booking"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 3-20 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "Deployment environment: dev, staging or prod (same topology in each)."
  type        = string
  default     = "prod"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "tags" {
  description = "Standard tags merged into every resource; must include Owner and CostCenter."
  type        = map(string)
  default = {
    Owner      = "reservations-platform"
    CostCenter = "bookings"
  }

  validation {
    condition     = length(trimspace(lookup(var.tags, "Owner", ""))) > 0 && length(trimspace(lookup(var.tags, "CostCenter", ""))) > 0
    error_message = "tags must include non-empty Owner and CostCenter."
  }
}

# -----------------------------------------------------------------------------
# Variables: VPC (built in-stack so the stack deploys on its own)
# -----------------------------------------------------------------------------
variable "vpc_cidr" {
  description = "CIDR of the stack's VPC."
  type        = string
  default     = "10.60.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR such as 10.60.0.0/16."
  }
}

variable "num_availability_zones" {
  description = "Availability zones used (one public and one private subnet, and one NAT gateway, per zone)."
  type        = number
  default     = 2

  validation {
    condition     = var.num_availability_zones >= 2 && var.num_availability_zones <= 3 && floor(var.num_availability_zones) == var.num_availability_zones
    error_message = "num_availability_zones must be 2 or 3 (Aurora and Redis subnet groups need two zones)."
  }
}

variable "public_subnet_cidrs" {
  description = "One CIDR per zone for the public subnets, which hold only the NAT gateways."
  type        = list(string)
  default     = ["10.60.0.0/24", "10.60.1.0/24"]

  validation {
    condition     = alltrue([for c in var.public_subnet_cidrs : can(cidrnetmask(c))])
    error_message = "public_subnet_cidrs must all be IPv4 CIDRs."
  }
}

variable "private_subnet_cidrs" {
  description = "One CIDR per zone for the private subnets (Lambda, Redis, Aurora, endpoints)."
  type        = list(string)
  default     = ["10.60.16.0/20", "10.60.32.0/20"]

  validation {
    condition     = alltrue([for c in var.private_subnet_cidrs : can(cidrnetmask(c))])
    error_message = "private_subnet_cidrs must all be IPv4 CIDRs."
  }
}

# -----------------------------------------------------------------------------
# Variables: booking API
# -----------------------------------------------------------------------------
variable "booking_api_rate_limit_rps" {
  description = "Steady-state request rate of the booking API (SLA: ~1,200 RPS sustained)."
  type        = number
  default     = 2000

  validation {
    condition     = var.booking_api_rate_limit_rps >= 1 && var.booking_api_rate_limit_rps <= 10000
    error_message = "booking_api_rate_limit_rps must be between 1 and 10000."
  }
}

variable "booking_api_burst_limit" {
  description = "Burst the booking API absorbs above the rate limit (SLA: ~2,000 RPS bursts)."
  type        = number
  default     = 2000

  validation {
    condition     = var.booking_api_burst_limit >= 1 && var.booking_api_burst_limit <= 10000 && floor(var.booking_api_burst_limit) == var.booking_api_burst_limit
    error_message = "booking_api_burst_limit must be a whole number between 1 and 10000."
  }
}

variable "booking_client_principals" {
  description = "IAM principals (account roots, roles or users) that may assume the booking-client role to call POST /book signed; empty: any principal of this account whose own policy lets it assume the role."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.booking_client_principals : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/.+|user/.+)$", p))])
    error_message = "booking_client_principals must hold IAM ARNs of an account root, a role or a user (arn:aws:iam::<12 digits>:root|role/...|user/...)."
  }
}

variable "max_nights" {
  description = "Longest stay one booking may cover (one conditional write per night, in one transaction)."
  type        = number
  default     = 14

  validation {
    # TransactWriteItems takes 100 items: per night an inventory update and an allocation, plus the booking and its hold.
    condition     = var.max_nights >= 1 && var.max_nights <= 49 && floor(var.max_nights) == var.max_nights
    error_message = "max_nights must be a whole number between 1 and 49 (DynamoDB transactions hold 100 items)."
  }
}

# -----------------------------------------------------------------------------
# Variables: DynamoDB inventory (global table)
# -----------------------------------------------------------------------------
variable "dynamodb_table_name" {
  description = "Base name of the inventory table (prefixed with project and environment)."
  type        = string
  default     = "inventory"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,60}$", var.dynamodb_table_name))
    error_message = "dynamodb_table_name must be 3-60 letters, digits, '_', '.' or '-'."
  }
}

variable "dynamodb_replica_regions" {
  description = "Regions holding global-table replicas of the inventory (never the primary region)."
  type        = list(string)
  default     = ["us-east-1", "eu-west-1"]

  validation {
    condition     = alltrue([for r in var.dynamodb_replica_regions : can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", r))]) && length(distinct(var.dynamodb_replica_regions)) == length(var.dynamodb_replica_regions)
    error_message = "dynamodb_replica_regions must be distinct AWS region names such as eu-west-1."
  }
}

variable "hold_ttl_seconds" {
  description = "Lifetime of a booking request's hold record (the idempotency lock a retried request finds)."
  type        = number
  default     = 900

  validation {
    condition     = var.hold_ttl_seconds >= 60 && var.hold_ttl_seconds <= 86400
    error_message = "hold_ttl_seconds must be between 60 and 86400."
  }
}

variable "booking_retention_days" {
  description = "Days after the stay date that room-night and booking items stay in the hot table (Aurora keeps the audit copy)."
  type        = number
  default     = 400

  validation {
    condition     = var.booking_retention_days >= 30 && var.booking_retention_days <= 3650
    error_message = "booking_retention_days must be between 30 and 3650."
  }
}

variable "deletion_protection" {
  description = "Deletion protection of the inventory table and the Aurora cluster."
  type        = bool
  default     = true
}

# -----------------------------------------------------------------------------
# Variables: Lambda
# -----------------------------------------------------------------------------
variable "lambda_runtime" {
  description = "Python runtime of every function (the layer is built for it)."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.12 (the layer's packages are built for it)."
  }
}

variable "lambda_memory_mb" {
  description = "Memory of each function in MB."
  type        = map(number)
  default = {
    booking_handler        = 512
    cache_updater          = 256
    pms_sync_worker        = 256
    reconciliation_checker = 512
    overbooking_resolver   = 256
  }

  validation {
    condition = (
      toset(keys(var.lambda_memory_mb)) == toset(["booking_handler", "cache_updater", "pms_sync_worker", "reconciliation_checker", "overbooking_resolver"])
      && alltrue([for m in values(var.lambda_memory_mb) : m >= 128 && m <= 10240])
    )
    error_message = "lambda_memory_mb must give each of the five functions 128-10240 MB."
  }
}

variable "lambda_timeout_seconds" {
  description = "Timeout of the worker functions (booking_handler answers within the API's limit)."
  type        = number
  default     = 30

  validation {
    condition     = var.lambda_timeout_seconds >= 10 && var.lambda_timeout_seconds <= 900
    error_message = "lambda_timeout_seconds must be between 10 and 900."
  }
}

# -----------------------------------------------------------------------------
# Variables: ElastiCache Redis (per-property availability cache)
# -----------------------------------------------------------------------------
variable "cache_node_type" {
  description = "ElastiCache node type of the availability cache."
  type        = string
  default     = "cache.t4g.small"

  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.cache_node_type))
    error_message = "cache_node_type must be an ElastiCache node type such as cache.t4g.small."
  }
}

variable "cache_num_nodes" {
  description = "Redis nodes (1 primary plus replicas); more than one enables failover and Multi-AZ."
  type        = number
  default     = 2

  validation {
    condition     = var.cache_num_nodes >= 1 && var.cache_num_nodes <= 6 && floor(var.cache_num_nodes) == var.cache_num_nodes
    error_message = "cache_num_nodes must be a whole number between 1 and 6."
  }
}

variable "cache_ttl_seconds" {
  description = "TTL of a property's availability snapshot in Redis (refreshed on every change of that property)."
  type        = number
  default     = 900

  validation {
    condition     = var.cache_ttl_seconds >= 60 && var.cache_ttl_seconds <= 86400
    error_message = "cache_ttl_seconds must be between 60 and 86400."
  }
}

# -----------------------------------------------------------------------------
# Variables: PMS integrations (SNS -> SQS -> pms_sync_worker)
# -----------------------------------------------------------------------------
variable "pms_integrations" {
  description = "One queue per PMS integration class: its API base URL and the most concurrent calls it accepts."
  type = map(object({
    endpoint_url    = string
    max_concurrency = number
  }))

  validation {
    condition     = length(var.pms_integrations) >= 1 && alltrue([for k, v in var.pms_integrations : can(regex("^[a-z][a-z0-9]{1,15}$", k)) && can(regex("^https?://[^\\s/]+", v.endpoint_url)) && v.max_concurrency >= 2 && v.max_concurrency <= 1000])
    error_message = "pms_integrations needs at least one entry keyed by 2-16 lower-case letters/digits, with an http(s) endpoint_url and max_concurrency 2-1000."
  }
}

variable "pms_queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the PMS queues; at least six times lambda_timeout_seconds (AWS guidance)."
  type        = number
  default     = 180

  validation {
    condition     = var.pms_queue_visibility_timeout_seconds >= 30 && var.pms_queue_visibility_timeout_seconds <= 43200
    error_message = "pms_queue_visibility_timeout_seconds must be between 30 and 43200."
  }
}

variable "pms_max_retries" {
  description = "Retries of one PMS call after the first attempt (exponential backoff with full jitter)."
  type        = number
  default     = 3

  validation {
    condition     = var.pms_max_retries >= 0 && var.pms_max_retries <= 10 && floor(var.pms_max_retries) == var.pms_max_retries
    error_message = "pms_max_retries must be a whole number between 0 and 10."
  }
}

variable "pms_backoff_base_ms" {
  description = "First backoff of a retried PMS call in ms (doubles each retry, capped at 5 s)."
  type        = number
  default     = 200

  validation {
    condition     = var.pms_backoff_base_ms >= 10 && var.pms_backoff_base_ms <= 5000
    error_message = "pms_backoff_base_ms must be between 10 and 5000."
  }
}

variable "circuit_failure_threshold" {
  description = "Consecutive failed PMS deliveries that open the circuit breaker of that PMS."
  type        = number
  default     = 5

  validation {
    condition     = var.circuit_failure_threshold >= 1 && var.circuit_failure_threshold <= 100
    error_message = "circuit_failure_threshold must be between 1 and 100."
  }
}

variable "circuit_open_seconds" {
  description = "How long an open breaker stops calls to its PMS before one trial call (half-open)."
  type        = number
  default     = 30

  validation {
    condition     = var.circuit_open_seconds >= 5 && var.circuit_open_seconds <= 3600
    error_message = "circuit_open_seconds must be between 5 and 3600."
  }
}

variable "pms_max_receive_count" {
  description = "Deliveries of one PMS message before it is parked in the DLQ (an open breaker defers, it does not discard)."
  type        = number
  default     = 20

  validation {
    condition     = var.pms_max_receive_count >= 3 && var.pms_max_receive_count <= 1000
    error_message = "pms_max_receive_count must be between 3 and 1000."
  }
}

# -----------------------------------------------------------------------------
# Variables: reconciliation (EventBridge -> Step Functions)
# -----------------------------------------------------------------------------
variable "reconciliation_schedule_expression" {
  description = "When the reconciliation state machine runs (SLA: every 5 minutes)."
  type        = string
  default     = "rate(5 minutes)"

  # A fixed rate: the alarms on what a run reports (UnresolvedOverbooking, ReplicaDrift) are
  # evaluated over the period between two runs.
  validation {
    condition     = can(regex("^rate\\([1-9][0-9]* (minute|minutes|hour|hours)\\)$", var.reconciliation_schedule_expression))
    error_message = "reconciliation_schedule_expression must be an EventBridge rate(N minutes) or rate(N hours) expression."
  }
}

variable "reconciliation_window_seconds" {
  description = "How far back a run rechecks changed room-nights; longer than the schedule so runs overlap."
  type        = number
  default     = 600

  validation {
    condition     = var.reconciliation_window_seconds >= 60 && var.reconciliation_window_seconds <= 86400
    error_message = "reconciliation_window_seconds must be between 60 and 86400."
  }
}

variable "replication_lag_alarm_ms" {
  description = "Replica lag that raises the replication alarm (SLA: typically < 5 s, alert > 10 s)."
  type        = number
  default     = 10000

  validation {
    condition     = var.replication_lag_alarm_ms >= 1000 && var.replication_lag_alarm_ms <= 600000
    error_message = "replication_lag_alarm_ms must be between 1000 and 600000."
  }
}

# -----------------------------------------------------------------------------
# Variables: Aurora PostgreSQL (audit / reconciliation store)
# -----------------------------------------------------------------------------
variable "db_name" {
  description = "Database of the audit store."
  type        = string
  default     = "bookings"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must start with a letter and hold only lower-case letters, digits and '_'."
  }
}

variable "master_username" {
  description = "Aurora master user (its password is generated into Secrets Manager)."
  type        = string
  default     = "bookingadmin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,15}$", var.master_username)) && !contains(["admin", "postgres", "rdsadmin"], var.master_username)
    error_message = "master_username must be 1-16 lower-case letters, digits or '_', and not a reserved name."
  }
}

variable "aurora_min_capacity" {
  description = "Aurora Serverless v2 minimum ACUs."
  type        = number
  default     = 0.5

  validation {
    condition     = var.aurora_min_capacity >= 0.5 && var.aurora_min_capacity <= 256
    error_message = "aurora_min_capacity must be between 0.5 and 256 ACUs."
  }
}

variable "aurora_max_capacity" {
  description = "Aurora Serverless v2 maximum ACUs."
  type        = number
  default     = 8

  validation {
    condition     = var.aurora_max_capacity >= 1 && var.aurora_max_capacity <= 256
    error_message = "aurora_max_capacity must be between 1 and 256 ACUs."
  }
}

variable "backup_retention_days" {
  description = "Aurora automated backup retention."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 1 and 35."
  }
}

# -----------------------------------------------------------------------------
# Variables: observability and secrets
# -----------------------------------------------------------------------------
variable "log_retention_days" {
  description = "Retention of every log group."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ... 3653)."
  }
}

variable "secret_recovery_window_days" {
  description = "Recovery window of deleted secrets."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or between 7 and 30."
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

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

# One zip per function package under lib/lambdas.
data "archive_file" "lambda_package" {
  for_each = local.lambda_functions

  type             = "zip"
  source_dir       = "${path.module}/lambdas/${each.key}"
  output_path      = "${path.module}/.build/${each.key}.zip"
  output_file_mode = "0644"
  excludes         = ["__pycache__", "**/__pycache__/**", "**/*.pyc"]
}

# The layer (aws-lambda-powertools, redis, pg8000, tap_common, booking_common) is built into
# lib/.build/layer/python by the harness; zipping it here makes its hash part of the plan.
data "archive_file" "layer" {
  type             = "zip"
  source_dir       = "${path.module}/.build/layer"
  output_path      = "${path.module}/.build/layer.zip"
  output_file_mode = "0644"
  excludes         = ["**/__pycache__/**", "**/*.pyc"]
}

# Generated by Secrets Manager; read at apply time only (depends_on), so plans carry no secret.
data "aws_secretsmanager_random_password" "redis_auth" {
  password_length     = 64
  exclude_punctuation = true
  include_space       = false

  depends_on = [aws_secretsmanager_secret.this]
}

data "aws_secretsmanager_random_password" "aurora_master" {
  password_length     = 40
  exclude_punctuation = true
  include_space       = false

  depends_on = [aws_secretsmanager_secret.this]
}

# -----------------------------------------------------------------------------
# Locals: names, tags, flow constants, functions and their environment
# -----------------------------------------------------------------------------
locals {
  name_prefix = "${var.project_name}-${var.environment}"
  account_id  = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.name

  common_tags = merge(var.tags, {
    Project     = var.project_name
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  azs = {
    for i in range(var.num_availability_zones) : format("az%d", i + 1) => {
      name         = try(data.aws_availability_zones.available.names[i], null)
      public_cidr  = try(var.public_subnet_cidrs[i], null)
      private_cidr = try(var.private_subnet_cidrs[i], null)
    }
  }

  names = {
    api             = "${local.name_prefix}-booking-api"
    inventory_table = "${local.name_prefix}-${var.dynamodb_table_name}"
    circuit_table   = "${local.name_prefix}-pms-circuit"
    redis           = "${local.name_prefix}-cache"
    aurora          = "${local.name_prefix}-audit"
    state_machine   = "${local.name_prefix}-reconciliation"
    schedule_rule   = "${local.name_prefix}-reconciliation"
    layer           = "${local.name_prefix}-common"
    topic           = "${local.name_prefix}-inventory-updates"
    alarms_topic    = "${local.name_prefix}-alarms"
    redis_secret    = "${local.name_prefix}/redis/auth"
    aurora_secret   = "${local.name_prefix}/aurora/master"
    metrics         = "${local.name_prefix}/booking"
  }

  # The longest one PMS update can take in pms_sync_worker (handler.worst_case_ms mirrors it).
  pms_worst_case_ms = (var.pms_max_retries + 1) * 3000 + sum(concat([0], [for i in range(var.pms_max_retries) : min(5000, var.pms_backoff_base_ms * pow(2, i))])) + 3000

  function_names = { for k in keys(local.lambda_functions) : k => "${local.name_prefix}-${replace(k, "_", "-")}" }

  # Constants of the booking flow: the same in every environment.
  flow = {
    log_level                  = "INFO"
    max_units                  = 9
    booking_max_attempts       = 3 # optimistic-lock retries before 409 conflict
    api_timeout_ms             = 5000
    ddb_stream_batch_size      = 100
    ddb_stream_window_s        = 0 # no batching delay: cache < 1 s P95
    ddb_stream_parallelization = 4
    ddb_stream_retries         = 5
    ddb_stream_max_age_s       = 3600
    pms_batch_size             = 10
    pms_batching_window_s      = 1
    dlq_retention_s            = 1209600
    queue_retention_s          = 345600
    cache_grace_s              = 5   # a table change older than this must be in the cache (SLA 1 s)
    pms_grace_s                = 120 # ... must be acknowledged by the PMS (SLA 2 min)
    max_hot_keys               = 500 # room-nights one audit run rechecks
    hot_recheck_delay_s        = 1   # change -> first comparison: conflicts detected < 5 s
    recheck_batch_size         = 10  # messages of up to 100 nights each
    recheck_batching_window_s  = 1
    recheck_max_receives       = 5  # then the recheck DLQ
    hot_recheck_lag_alarm_s    = 30 # SLA: hot bookings rechecked within 30 s
    sfn_task_timeout_s         = 60
    sfn_execution_timeout_s    = 120 # SLA: the audit finishes within 2 minutes
    alarm_period_s             = 60
    redis_port                 = 6379
    aurora_port                = 5432
    aurora_engine_version      = "16.6"
    aurora_parameter_family    = "aurora-postgresql16"
    redis_engine_version       = "7.1"
  }

  # The five functions of the spec; each has its own package under lib/lambdas.
  lambda_functions = {
    booking_handler = {
      timeout     = min(var.lambda_timeout_seconds, 10) # the API integration gives up after 5 s
      description = "POST /book: validates, reserves every night with a conditional write on version, publishes the change; GET /availability from the cache."
    }
    cache_updater = {
      timeout     = var.lambda_timeout_seconds
      description = "DynamoDB stream consumer: writes the changed room-nights of one property into its Redis snapshot (TTL)."
    }
    pms_sync_worker = {
      timeout     = var.lambda_timeout_seconds
      description = "SQS consumer per PMS integration: pushes availability to the PMS with retries, backoff and a circuit breaker."
    }
    reconciliation_checker = {
      timeout     = var.lambda_timeout_seconds
      description = "Compares changed room-nights in the table, the cache, the replicas and Aurora: each within 30 s of its change (stream, recheck queue) and every 5 minutes (Step Functions)."
    }
    overbooking_resolver = {
      timeout     = var.lambda_timeout_seconds
      description = "Step Functions task: repairs drift, reassigns overbooked guests within the property or raises the alarm."
    }
  }

  lambda_common_env = {
    ENVIRONMENT     = var.environment
    PROJECT         = var.project_name
    LOG_LEVEL       = local.flow.log_level
    INVENTORY_TABLE = local.names.inventory_table
  }

  redis_env = {
    REDIS_HOST            = aws_elasticache_replication_group.cache.primary_endpoint_address
    REDIS_PORT            = tostring(local.flow.redis_port)
    REDIS_AUTH_SECRET_ARN = aws_secretsmanager_secret.this["redis"].arn
    REDIS_TLS             = "true"
  }

  db_env = {
    DB_SECRET_ARN = aws_secretsmanager_secret.this["aurora"].arn
    DB_PORT       = tostring(local.flow.aurora_port)
    DB_NAME       = var.db_name
  }

  # Secrets never travel in environment variables: only the ARNs of the secrets that hold them.
  lambda_function_env = {
    booking_handler = merge(local.redis_env, {
      INVENTORY_TOPIC_ARN    = aws_sns_topic.this["inventory_updates"].arn
      HOLD_TTL_SECONDS       = tostring(var.hold_ttl_seconds)
      BOOKING_RETENTION_DAYS = tostring(var.booking_retention_days)
      MAX_NIGHTS             = tostring(var.max_nights)
      MAX_UNITS              = tostring(local.flow.max_units)
      BOOKING_MAX_ATTEMPTS   = tostring(local.flow.booking_max_attempts)
    })
    cache_updater = merge(local.redis_env, {
      CACHE_TTL_SECONDS = tostring(var.cache_ttl_seconds)
    })
    pms_sync_worker = merge(local.db_env, {
      DB_HOST                 = aws_rds_cluster.aurora.endpoint
      CIRCUIT_TABLE           = local.names.circuit_table
      PMS_ENDPOINTS           = jsonencode({ for k, v in var.pms_integrations : k => v.endpoint_url })
      PMS_API_KEY_SECRET_ARNS = jsonencode({ for k, s in aws_secretsmanager_secret.pms : k => s.arn })
      PMS_QUEUES = jsonencode({ for k, q in aws_sqs_queue.pms : q.arn => {
        pms_id    = k
        queue_url = q.url
        dlq_url   = aws_sqs_queue.pms_dlq[k].url
      } })
      MAX_RETRIES               = tostring(var.pms_max_retries)
      BACKOFF_BASE_MS           = tostring(var.pms_backoff_base_ms)
      CIRCUIT_FAILURE_THRESHOLD = tostring(var.circuit_failure_threshold)
      CIRCUIT_OPEN_SECONDS      = tostring(var.circuit_open_seconds)
      METRICS_NAMESPACE         = local.names.metrics
    })
    reconciliation_checker = merge(local.redis_env, local.db_env, {
      DB_HOST                  = aws_rds_cluster.aurora.reader_endpoint # reads go to the reader
      REPLICA_REGIONS          = join(",", var.dynamodb_replica_regions)
      RECONCILE_WINDOW_SECONDS = tostring(var.reconciliation_window_seconds)
      MAX_HOT_KEYS             = tostring(local.flow.max_hot_keys)
      CACHE_GRACE_SECONDS      = tostring(local.flow.cache_grace_s)
      REPLICA_LAG_SECONDS      = tostring(ceil(var.replication_lag_alarm_ms / 1000))
      PMS_GRACE_SECONDS        = tostring(local.flow.pms_grace_s)
      RECHECK_QUEUE_URL        = aws_sqs_queue.recheck.url
      RESOLVER_FUNCTION        = local.function_names["overbooking_resolver"]
      METRICS_NAMESPACE        = local.names.metrics
    })
    overbooking_resolver = merge(local.redis_env, {
      INVENTORY_TOPIC_ARN = aws_sns_topic.this["inventory_updates"].arn
      CACHE_TTL_SECONDS   = tostring(var.cache_ttl_seconds)
      METRICS_NAMESPACE   = local.names.metrics
    })
  }

  lambda_environment = {
    for k in keys(local.lambda_functions) : k => merge(
      local.lambda_common_env,
      { POWERTOOLS_SERVICE_NAME = k },
      local.lambda_function_env[k],
    )
  }
}

# -----------------------------------------------------------------------------
# Network: VPC, subnets, NAT, routes, endpoints, flow logs
#
# Functions, Redis and Aurora sit in private subnets. The public subnets hold only
# the NAT gateways, through which pms_sync_worker reaches the PMS APIs and
# reconciliation_checker reaches the replicas in other regions.
# -----------------------------------------------------------------------------
resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-vpc" })

  lifecycle {
    precondition {
      condition     = length(var.public_subnet_cidrs) == var.num_availability_zones && length(var.private_subnet_cidrs) == var.num_availability_zones
      error_message = "public_subnet_cidrs and private_subnet_cidrs must each hold exactly num_availability_zones CIDRs."
    }
  }
}

# No rules: nothing can use the default security group by accident.
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
  map_public_ip_on_launch = false

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-public-${each.key}", Tier = "public" })

  lifecycle {
    precondition {
      condition     = each.value.name != null
      error_message = "num_availability_zones is larger than the zones available in the region."
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

# DynamoDB traffic of the primary region stays off the NAT gateways.
resource "aws_vpc_endpoint" "dynamodb" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [for rt in aws_route_table.private : rt.id]

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-dynamodb-gateway" })
}

# Interface endpoints for the regional APIs the functions call on the booking path.
resource "aws_vpc_endpoint" "interface" {
  for_each = toset(["sns", "secretsmanager", "monitoring"])

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = [for s in aws_subnet.private : s.id]
  security_group_ids  = [aws_security_group.this["endpoints"].id]

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${each.key}-endpoint" })
}

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
# Security: KMS keys (data: queues, topics, secrets, Aurora, Redis, Lambda
# environments, state machine; logs: every log group). Yearly rotation; key
# policies name their actions ("*" resource in a key policy is the key itself).
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
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
  ]

  # sns: delivers to the encrypted PMS queues; events: failed schedule deliveries to
  # async_failures; cloudwatch: alarm notifications to the encrypted alarms topic;
  # delivery.logs: decrypts the reconciliation state machine's execution data it logs.
  kms_data_service_principals = ["sns.amazonaws.com", "events.amazonaws.com", "cloudwatch.amazonaws.com", "delivery.logs.amazonaws.com"]

  log_group_arn_prefix = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:"
  data_key             = aws_kms_key.this["data"].arn
}

data "aws_iam_policy_document" "kms_data" {
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
    sid       = "CloudWatchLogsEncryptsThisStacksLogGroups"
    effect    = "Allow"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = [for name in values(local.log_group_names) : "${local.log_group_arn_prefix}${name}"]
    }
  }
}

resource "aws_kms_key" "this" {
  for_each = {
    data = { description = "Data stores and messaging of ${local.name_prefix}", policy = data.aws_iam_policy_document.kms_data.json }
    logs = { description = "CloudWatch log groups of ${local.name_prefix}", policy = data.aws_iam_policy_document.kms_logs.json }
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
# Security: security groups, one rule per edge
#   lambda    no ingress; egress to Redis, Aurora, the endpoints and HTTPS (PMS APIs, replicas)
#   redis     6379 from lambda only;  aurora  5432 from lambda only;  endpoints  443 from lambda only
# -----------------------------------------------------------------------------
locals {
  security_groups = {
    lambda    = "Booking functions (egress only)"
    redis     = "Availability cache (6379 from the functions only)"
    aurora    = "Audit store (5432 from the functions only)"
    endpoints = "Interface VPC endpoints (443 from the functions only)"
  }

  security_group_ingress = {
    redis_from_lambda     = { sg = "redis", port = local.flow.redis_port, peer = "lambda", description = "Redis TLS from the functions" }
    aurora_from_lambda    = { sg = "aurora", port = local.flow.aurora_port, peer = "lambda", description = "PostgreSQL TLS from the functions" }
    endpoints_from_lambda = { sg = "endpoints", port = 443, peer = "lambda", description = "HTTPS to the interface endpoints" }
  }

  security_group_egress = {
    lambda_to_redis     = { sg = "lambda", port = local.flow.redis_port, peer = "redis", cidr = null, description = "Redis TLS" }
    lambda_to_aurora    = { sg = "lambda", port = local.flow.aurora_port, peer = "aurora", cidr = null, description = "PostgreSQL TLS" }
    lambda_to_endpoints = { sg = "lambda", port = 443, peer = "endpoints", cidr = null, description = "Interface endpoints" }
    # PMS APIs are on the internet and the replicas are in other regions: HTTPS through the NAT.
    lambda_https = { sg = "lambda", port = 443, peer = null, cidr = "0.0.0.0/0", description = "HTTPS to PMS APIs and other regions (NAT)" }
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
# Security: Secrets Manager
#   redis, aurora  generated here; functions read them at run time by ARN
#   pms/<id>       the API key the PMS vendor issues: stored by operations with
#                  `aws secretsmanager put-secret-value`, never in Terraform state
# -----------------------------------------------------------------------------
resource "aws_secretsmanager_secret" "this" {
  for_each = {
    redis  = { name = local.names.redis_secret, description = "Redis AUTH token of ${local.names.redis}" }
    aurora = { name = local.names.aurora_secret, description = "Aurora PostgreSQL master credentials of ${local.names.aurora}" }
  }

  name                    = each.value.name
  description             = each.value.description
  kms_key_id              = local.data_key
  recovery_window_in_days = var.secret_recovery_window_days

  tags = local.common_tags
}

resource "aws_secretsmanager_secret" "pms" {
  for_each = var.pms_integrations

  name                    = "${local.name_prefix}/pms/${each.key}/api-key"
  description             = "API key of the ${each.key} PMS integration ({\"api_key\": \"...\"}), issued by the vendor"
  kms_key_id              = local.data_key
  recovery_window_in_days = var.secret_recovery_window_days

  tags = merge(local.common_tags, { Pms = each.key })
}

resource "aws_secretsmanager_secret_version" "redis_auth" {
  secret_id     = aws_secretsmanager_secret.this["redis"].id
  secret_string = jsonencode({ auth_token = data.aws_secretsmanager_random_password.redis_auth.random_password })

  lifecycle {
    ignore_changes = [secret_string]
  }
}

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
# Security: IAM, one role per function (least privilege)
#
# Actions are named one by one and resources are exact ARNs; "*" resources appear
# only where AWS has no resource-level permission, each marked. DynamoDB
# TransactWriteItems is authorised per item (UpdateItem, PutItem, DeleteItem).
# -----------------------------------------------------------------------------
locals {
  inventory_arn = aws_dynamodb_table.inventory.arn
  replica_table_arns = [
    for r in var.dynamodb_replica_regions : "arn:${local.partition}:dynamodb:${r}:${local.account_id}:table/${local.names.inventory_table}"
  ]

  lambda_base_statements = {
    for k in keys(local.lambda_functions) : k => [
      {
        sid        = "WriteOwnLogGroup"
        actions    = ["logs:CreateLogStream", "logs:PutLogEvents"]
        resources  = ["${aws_cloudwatch_log_group.this[k].arn}:*"]
        conditions = []
      },
      {
        # AWS forces "*": the ENI calls Lambda makes in the VPC have no resource-level permissions.
        sid        = "ManageVpcNetworkInterfaces"
        actions    = ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
        resources  = ["*"]
        conditions = []
      },
      {
        # AWS forces "*": X-Ray segments have no resource ARN.
        sid        = "WriteXRayTraces"
        actions    = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
        resources  = ["*"]
        conditions = []
      },
      {
        sid        = "UseDataKey"
        actions    = ["kms:Decrypt", "kms:GenerateDataKey"]
        resources  = [local.data_key]
        conditions = []
      },
      {
        sid        = "SendToAsyncFailureQueue"
        actions    = ["sqs:SendMessage"]
        resources  = [aws_sqs_queue.failures["async_failures"].arn]
        conditions = []
      },
    ]
  }

  # What a consumer of the inventory stream needs (cache_updater, reconciliation_checker): read the
  # stream, and park what it gives up in stream_failures.
  inventory_stream_statements = [
    {
      sid        = "ReadInventoryStream"
      actions    = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
      resources  = ["${local.inventory_arn}/stream/*"]
      conditions = []
    },
    {
      # AWS forces "*": ListStreams has no resource type (a stream ARN here never matches).
      sid        = "ListTableStreams"
      actions    = ["dynamodb:ListStreams"]
      resources  = ["*"]
      conditions = []
    },
    {
      sid        = "SendDiscardedBatches"
      actions    = ["sqs:SendMessage"]
      resources  = [aws_sqs_queue.failures["stream_failures"].arn]
      conditions = []
    },
  ]

  redis_secret_statement = {
    sid        = "ReadRedisAuthToken"
    actions    = ["secretsmanager:GetSecretValue"]
    resources  = [aws_secretsmanager_secret.this["redis"].arn]
    conditions = []
  }

  # AWS forces "*": PutMetricData has no resource; the namespace condition scopes it.
  put_metrics_statement = {
    sid        = "PutBookingMetrics"
    actions    = ["cloudwatch:PutMetricData"]
    resources  = ["*"]
    conditions = [{ test = "StringEquals", variable = "cloudwatch:namespace", values = [local.names.metrics] }]
  }

  lambda_extra_statements = {
    booking_handler = [
      {
        # Property and room-night reads (GetItem, BatchGetItem); the reservation transaction
        # updates each night (UpdateItem) and puts the allocations, booking and hold (PutItem).
        sid        = "ReserveInventory"
        actions    = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"]
        resources  = [local.inventory_arn]
        conditions = []
      },
      {
        sid        = "PublishInventoryChanges"
        actions    = ["sns:Publish"]
        resources  = [aws_sns_topic.this["inventory_updates"].arn]
        conditions = []
      },
      local.redis_secret_statement,
    ]
    cache_updater = concat(local.inventory_stream_statements, [local.redis_secret_statement])
    pms_sync_worker = [
      {
        sid        = "ConsumePmsQueues"
        actions    = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        resources  = [for q in aws_sqs_queue.pms : q.arn]
        conditions = []
      },
      {
        # Messages the PMS refuses for good (4xx) are parked at once instead of retried; messages
        # that wait out an open breaker are sent again to their own queue with a delay.
        sid        = "ParkRejectedAndDeferMessages"
        actions    = ["sqs:SendMessage"]
        resources  = concat([for q in aws_sqs_queue.pms_dlq : q.arn], [for q in aws_sqs_queue.pms : q.arn])
        conditions = []
      },
      {
        sid        = "TrackCircuitBreakers"
        actions    = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
        resources  = [aws_dynamodb_table.circuit.arn]
        conditions = []
      },
      {
        sid        = "ReadPmsAndAuroraCredentials"
        actions    = ["secretsmanager:GetSecretValue"]
        resources  = concat([for s in aws_secretsmanager_secret.pms : s.arn], [aws_secretsmanager_secret.this["aurora"].arn])
        conditions = []
      },
      local.put_metrics_statement,
    ]
    reconciliation_checker = concat(
      # Its own consumer of the inventory stream: what changed, independently of cache_updater.
      local.inventory_stream_statements,
      [
        {
          # The room-nights (BatchGetItem) and their allocations (Query) in the primary
          # region, and the same items in every replica.
          sid        = "CompareInventoryAcrossRegions"
          actions    = ["dynamodb:BatchGetItem", "dynamodb:Query"]
          resources  = concat([local.inventory_arn], local.replica_table_arns)
          conditions = []
        },
        {
          # Queues changed nights and their follow-ups (SendMessageBatch is sqs:SendMessage); the
          # mapping consumes the queue.
          sid        = "QueueAndConsumeRechecks"
          actions    = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
          resources  = [aws_sqs_queue.recheck.arn]
          conditions = []
        },
        {
          # Findings of the hot recheck go to the resolver at once (asynchronous invoke).
          sid        = "InvokeResolver"
          actions    = ["lambda:InvokeFunction"]
          resources  = ["arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.function_names["overbooking_resolver"]}"]
          conditions = []
        },
        local.put_metrics_statement,
        local.redis_secret_statement,
        {
          sid        = "ReadAuroraCredentials"
          actions    = ["secretsmanager:GetSecretValue"]
          resources  = [aws_secretsmanager_secret.this["aurora"].arn]
          conditions = []
        },
      ],
    )
    overbooking_resolver = [
      {
        # Reads the property, room-nights and allocations; a reassignment is one transaction
        # (UpdateItem on both nights, PutItem of the new allocation, DeleteItem of the old).
        sid        = "ReassignAllocations"
        actions    = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
        resources  = [local.inventory_arn]
        conditions = []
      },
      {
        sid        = "RepublishCorrections"
        actions    = ["sns:Publish"]
        resources  = [aws_sns_topic.this["inventory_updates"].arn]
        conditions = []
      },
      local.redis_secret_statement,
      local.put_metrics_statement,
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

      dynamic "condition" {
        for_each = statement.value.conditions
        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = condition.value.values
        }
      }
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

resource "aws_iam_policy" "lambda" {
  for_each = local.lambda_functions

  name        = "${local.function_names[each.key]}-least-privilege"
  description = "What ${local.function_names[each.key]} calls, and nothing else"
  policy      = data.aws_iam_policy_document.lambda[each.key].json

  tags = local.common_tags
}

resource "aws_iam_role_policy_attachment" "lambda" {
  for_each = local.lambda_functions

  role       = aws_iam_role.lambda[each.key].name
  policy_arn = aws_iam_policy.lambda[each.key].arn
}

# -----------------------------------------------------------------------------
# Security: IAM, service roles (Step Functions, EventBridge, VPC flow logs)
# -----------------------------------------------------------------------------
locals {
  # From the name, so the EventBridge policy does not depend on the state machine.
  state_machine_arn = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.names.state_machine}"

  service_roles = {
    states    = { service = "states.amazonaws.com", description = "Step Functions: runs the reconciliation tasks" }
    events    = { service = "events.amazonaws.com", description = "EventBridge: starts the scheduled reconciliation" }
    flow_logs = { service = "vpc-flow-logs.amazonaws.com", description = "VPC flow logs delivery to CloudWatch Logs" }
  }

  service_role_statements = {
    states = [
      {
        # Least privilege: only the two reconciliation functions.
        sid       = "InvokeReconciliationTasks"
        actions   = ["lambda:InvokeFunction"]
        resources = [aws_lambda_function.this["reconciliation_checker"].arn, aws_lambda_function.this["overbooking_resolver"].arn]
      },
      {
        # AWS forces "*": the vended-log delivery APIs have no resource-level permissions.
        sid       = "DeliverExecutionLogs"
        actions   = ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"]
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
        sid       = "StartReconciliation"
        actions   = ["states:StartExecution"]
        resources = [local.state_machine_arn]
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
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
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
# Compute: the shared layer and the five functions
#
# Every function: private subnets and the lambda SG, X-Ray active tracing, its
# own KMS-encrypted log group (created first), its own role, a KMS-encrypted
# environment and the async_failures DLQ.
# -----------------------------------------------------------------------------
resource "aws_lambda_layer_version" "common" {
  layer_name               = local.names.layer
  description              = "aws-lambda-powertools, redis, pg8000, tap_common and booking_common"
  filename                 = data.archive_file.layer.output_path
  source_code_hash         = data.archive_file.layer.output_base64sha256
  compatible_runtimes      = [var.lambda_runtime]
  compatible_architectures = ["x86_64"]
}

resource "aws_lambda_function" "this" {
  for_each = local.lambda_functions

  function_name    = local.function_names[each.key]
  description      = each.value.description
  role             = aws_iam_role.lambda[each.key].arn
  runtime          = var.lambda_runtime
  handler          = "handler.lambda_handler"
  architectures    = ["x86_64"]
  filename         = data.archive_file.lambda_package[each.key].output_path
  source_code_hash = data.archive_file.lambda_package[each.key].output_base64sha256
  layers           = [aws_lambda_layer_version.common.arn]
  memory_size      = var.lambda_memory_mb[each.key]
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
    target_arn = aws_sqs_queue.failures["async_failures"].arn
  }

  # Logs: JSON lines into the function's own group; the role grants CreateLogStream/PutLogEvents there.
  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  tags = merge(local.common_tags, { Function = each.key })

  lifecycle {
    # pms_sync_worker starts a message only with time for its worst case (handler.worst_case_ms):
    # every attempt timing out (3 s), every backoff, and the audit store (3 s).
    precondition {
      condition     = each.key != "pms_sync_worker" || var.lambda_timeout_seconds * 1000 >= local.pms_worst_case_ms
      error_message = "lambda_timeout_seconds is shorter than one PMS update's worst case (pms_max_retries + 1 calls of 3 s, their backoffs from pms_backoff_base_ms, 3 s of audit): pms_sync_worker could never start one."
    }
  }

  depends_on = [
    aws_iam_role_policy_attachment.lambda,
    aws_cloudwatch_log_group.this,
  ]
}

# -----------------------------------------------------------------------------
# Ingest: HTTP API (v2), payload format 2.0
#
# SLA: ~1,200 RPS sustained and ~2,000 RPS bursts; the stage throttle is the
# documented ceiling. The booking path (API -> booking_handler -> conditional
# write -> response) must answer in < 400 ms P95: the integration times out at 5 s
# and the p95 latency alarm watches 400 ms.
# -----------------------------------------------------------------------------
locals {
  # POST /book takes only requests signed (SigV4) by principals allowed execute-api:Invoke on it:
  # the booking channels, through the booking-client role below. GET /availability answers anyone,
  # as the availability a hotel's site shows its visitors does.
  api_routes = {
    book         = { key = "POST /book", authorization = "AWS_IAM" }
    availability = { key = "GET /availability/{property_id}", authorization = "NONE" }
  }
}

resource "aws_apigatewayv2_api" "this" {
  name          = local.names.api
  description   = "Booking API of ${local.name_prefix}"
  protocol_type = "HTTP"

  tags = local.common_tags
}

resource "aws_apigatewayv2_integration" "booking_handler" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.this["booking_handler"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = local.flow.api_timeout_ms
}

resource "aws_apigatewayv2_route" "this" {
  for_each = local.api_routes

  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.value.key
  authorization_type = each.value.authorization
  target             = "integrations/${aws_apigatewayv2_integration.booking_handler.id}"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.booking_api_rate_limit_rps
    throttling_burst_limit = var.booking_api_burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.this["api_access"].arn
    format = jsonencode({
      requestId         = "$context.requestId"
      ip                = "$context.identity.sourceIp"
      requestTime       = "$context.requestTime"
      routeKey          = "$context.routeKey"
      status            = "$context.status"
      responseLatency   = "$context.responseLatency"
      integrationStatus = "$context.integrationStatus"
      integrationError  = "$context.integrationErrorMessage"
    })
  }

  tags = local.common_tags
}

# Booking clients: the channels assume this role and sign POST /book with it. HTTP APIs take no
# resource policies, so who may book is decided by identity policies alone (API Gateway, "Control
# access to HTTP APIs with IAM authorization").
data "aws_iam_policy_document" "booking_client_assume" {
  statement {
    sid     = "BookingChannelsAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = length(var.booking_client_principals) > 0 ? var.booking_client_principals : ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

data "aws_iam_policy_document" "booking_client" {
  statement {
    sid       = "BookRooms"
    effect    = "Allow"
    actions   = ["execute-api:Invoke"]
    resources = ["${aws_apigatewayv2_api.this.execution_arn}/$default/POST/book"]
  }
}

resource "aws_iam_role" "booking_client" {
  name                 = "${local.name_prefix}-booking-client"
  description          = "Booking channels calling POST /book of ${local.name_prefix}"
  assume_role_policy   = data.aws_iam_policy_document.booking_client_assume.json
  max_session_duration = 3600

  tags = local.common_tags
}

resource "aws_iam_role_policy" "booking_client" {
  name   = "book-rooms"
  role   = aws_iam_role.booking_client.id
  policy = data.aws_iam_policy_document.booking_client.json
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowBookingApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["booking_handler"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}

# -----------------------------------------------------------------------------
# Store: DynamoDB inventory, a global table (authoritative booking state)
#
# Items (pk, sk):
#   <property>#<room>#<date>, INVENTORY          available_units, total_units, version, updated_at
#   <property>#<room>#<date>, BOOKING#<id>       one night of one booking (units, guest)
#   BOOKING#<id>, BOOKING                        the booking (nights, status)
#   HOLD#<request_id>, HOLD                      idempotency lock of a request, expires_at (TTL)
#   PROPERTY#<property>, PROPERTY                pms_id and rooms {room_id: room_class}
# Every night is reserved with a conditional write on version (optimistic locking);
# streams carry NEW_AND_OLD_IMAGES to cache_updater. Replicas make it a global table
# (replication typically < 5 s, alarm > 10 s). Encryption at rest uses the AWS managed
# key: a customer managed key would be needed in every replica region, i.e. a provider
# per region, which a provider-less tap_stack.tf cannot declare.
# -----------------------------------------------------------------------------
resource "aws_dynamodb_table" "inventory" {
  name                        = local.names.inventory_table
  billing_mode                = "PAY_PER_REQUEST" # scales with the booking rate, no capacity planning
  hash_key                    = "pk"
  range_key                   = "sk"
  stream_enabled              = true
  stream_view_type            = "NEW_AND_OLD_IMAGES"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  # Holds expire hold_ttl_seconds after the request; past stays booking_retention_days after the night.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  dynamic "replica" {
    for_each = toset(var.dynamodb_replica_regions)
    content {
      region_name            = replica.value
      point_in_time_recovery = true
      propagate_tags         = true
    }
  }

  tags = merge(local.common_tags, { Name = local.names.inventory_table })

  lifecycle {
    precondition {
      condition     = !contains(var.dynamodb_replica_regions, var.aws_region)
      error_message = "dynamodb_replica_regions must not contain aws_region, which holds the primary table."
    }
  }
}

# Circuit breaker state per PMS: durable and shared by every pms_sync_worker instance.
resource "aws_dynamodb_table" "circuit" {
  name                        = local.names.circuit_table
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pms_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pms_id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = local.data_key
  }

  tags = merge(local.common_tags, { Name = local.names.circuit_table })
}

# -----------------------------------------------------------------------------
# Cache: DynamoDB stream -> cache_updater -> Redis (and -> reconciliation_checker, below)
#
# SLA: a property's cached availability is updated < 1 s P95 after the change, so
# the mapping does not batch (window 0) and runs four batches per shard at once
# (order is kept per item). Only INVENTORY items pass the filter. Failed records
# are retried, bisected, then parked in stream_failures: none is dropped silently.
# reconciliation_checker consumes the stream with the same settings (the hot recheck).
# -----------------------------------------------------------------------------
resource "aws_lambda_event_source_mapping" "inventory_stream" {
  for_each = toset(["cache_updater", "reconciliation_checker"])

  function_name                      = aws_lambda_function.this[each.key].function_name
  event_source_arn                   = aws_dynamodb_table.inventory.stream_arn
  starting_position                  = "LATEST"
  batch_size                         = local.flow.ddb_stream_batch_size
  maximum_batching_window_in_seconds = local.flow.ddb_stream_window_s
  parallelization_factor             = local.flow.ddb_stream_parallelization
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = local.flow.ddb_stream_retries
  maximum_record_age_in_seconds      = local.flow.ddb_stream_max_age_s
  function_response_types            = ["ReportBatchItemFailures"]

  filter_criteria {
    filter {
      pattern = jsonencode({ dynamodb = { Keys = { sk = { S = ["INVENTORY"] } } } })
    }
  }

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.failures["stream_failures"].arn
    }
  }

  tags = local.common_tags
}

# The stream's first consumer was a single mapping before reconciliation_checker became its second.
moved {
  from = aws_lambda_event_source_mapping.inventory_stream
  to   = aws_lambda_event_source_mapping.inventory_stream["cache_updater"]
}

# Redis keys: avail:{property_id} is a hash of "<room>#<date>" -> {"units","version"},
# one per property and only touched for that property's changed nights; its TTL is
# reset on every write. hot:changes is a sorted set of recently changed room-nights
# (score = change time), written by reconciliation_checker's own stream consumer: the wider
# audit's sample.
resource "aws_elasticache_subnet_group" "redis" {
  name        = local.names.redis
  description = "Private subnets of ${local.names.redis}"
  subnet_ids  = [for s in aws_subnet.private : s.id]

  tags = local.common_tags
}

resource "aws_elasticache_replication_group" "cache" {
  replication_group_id = local.names.redis
  description          = "Per-property availability snapshots of ${local.name_prefix}"
  engine               = "redis"
  engine_version       = local.flow.redis_engine_version
  node_type            = var.cache_node_type
  num_cache_clusters   = var.cache_num_nodes
  port                 = local.flow.redis_port
  parameter_group_name = "default.redis7"
  subnet_group_name    = aws_elasticache_subnet_group.redis.name
  security_group_ids   = [aws_security_group.this["redis"].id]

  automatic_failover_enabled = var.cache_num_nodes > 1
  multi_az_enabled           = var.cache_num_nodes > 1

  at_rest_encryption_enabled = true
  kms_key_id                 = local.data_key
  transit_encryption_enabled = true
  auth_token                 = jsondecode(aws_secretsmanager_secret_version.redis_auth.secret_string)["auth_token"]

  snapshot_retention_limit   = 1
  snapshot_window            = "02:00-03:00"
  maintenance_window         = "mon:04:00-mon:05:00"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Fan-out: SNS inventory_updates -> one SQS queue per PMS integration (+ DLQ)
#
# Booking changes fan out only to the affected property's PMS (filter on the
# pms_id message attribute), never to all 45k hotels. SLA: enqueued and attempted
# < 60 s (backlog alarm at 60 s). Poison messages go to the PMS's DLQ.
# -----------------------------------------------------------------------------
resource "aws_sns_topic" "this" {
  for_each = {
    inventory_updates = "Room-night availability changes (booking, correction)"
    alarms            = "Alarms of ${local.name_prefix}"
  }

  name              = each.key == "inventory_updates" ? local.names.topic : local.names.alarms_topic
  display_name      = each.value
  kms_master_key_id = local.data_key
  tracing_config    = "PassThrough"

  tags = local.common_tags
}

data "aws_iam_policy_document" "sns" {
  for_each = aws_sns_topic.this

  statement {
    sid       = "AccountPrincipalsUseTopic"
    effect    = "Allow"
    actions   = ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic"]
    resources = [each.value.arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "alarms" ? [1] : []
    content {
      sid       = "CloudWatchPublishesAlarms"
      effect    = "Allow"
      actions   = ["sns:Publish"]
      resources = [each.value.arn]
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
    actions   = ["sns:Publish"]
    resources = [each.value.arn]
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

resource "aws_sqs_queue" "pms_dlq" {
  for_each = var.pms_integrations

  name                              = "${local.name_prefix}-${each.key}-pms-dlq"
  message_retention_seconds         = local.flow.dlq_retention_s
  kms_master_key_id                 = local.data_key
  kms_data_key_reuse_period_seconds = 300

  tags = merge(local.common_tags, { Pms = each.key })
}

resource "aws_sqs_queue" "pms" {
  for_each = var.pms_integrations

  name                              = "${local.name_prefix}-${each.key}-pms"
  visibility_timeout_seconds        = var.pms_queue_visibility_timeout_seconds
  message_retention_seconds         = local.flow.queue_retention_s
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = local.data_key
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.pms_dlq[each.key].arn
    maxReceiveCount     = var.pms_max_receive_count
  })

  tags = merge(local.common_tags, { Pms = each.key })

  lifecycle {
    precondition {
      condition     = var.pms_queue_visibility_timeout_seconds >= 6 * var.lambda_timeout_seconds
      error_message = "pms_queue_visibility_timeout_seconds must be at least six times lambda_timeout_seconds."
    }
  }
}

resource "aws_sqs_queue_redrive_allow_policy" "pms_dlq" {
  for_each = var.pms_integrations

  queue_url = aws_sqs_queue.pms_dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.pms[each.key].arn]
  })
}

# Failure queues: stream_failures (on-failure destination of the stream mapping) and
# async_failures (asynchronous invocations and the schedule target).
resource "aws_sqs_queue" "failures" {
  for_each = toset(["stream_failures", "async_failures"])

  name                              = "${local.name_prefix}-${replace(each.key, "_", "-")}"
  message_retention_seconds         = local.flow.dlq_retention_s
  kms_master_key_id                 = local.data_key
  kms_data_key_reuse_period_seconds = 300

  tags = local.common_tags
}

locals {
  # Who may send to each queue besides the account's own roles (and every queue denies plain HTTP).
  queue_policies = merge(
    { for k, q in aws_sqs_queue.pms : "pms_${k}" => { queue = q, service = "sns.amazonaws.com", source_arn = aws_sns_topic.this["inventory_updates"].arn } },
    { for k, q in aws_sqs_queue.pms_dlq : "pms_dlq_${k}" => { queue = q, service = null, source_arn = null } },
    {
      stream_failures = { queue = aws_sqs_queue.failures["stream_failures"], service = null, source_arn = null }
      async_failures  = { queue = aws_sqs_queue.failures["async_failures"], service = "events.amazonaws.com", source_arn = aws_cloudwatch_event_rule.reconciliation.arn }
      recheck         = { queue = aws_sqs_queue.recheck, service = null, source_arn = null }
      recheck_dlq     = { queue = aws_sqs_queue.recheck_dlq, service = null, source_arn = null }
    },
  )
}

data "aws_iam_policy_document" "sqs" {
  for_each = local.queue_policies

  dynamic "statement" {
    for_each = each.value.service == null ? [] : [each.value]
    content {
      sid       = "AllowOnlyThisSource"
      effect    = "Allow"
      actions   = ["sqs:SendMessage"]
      resources = [statement.value.queue.arn]
      principals {
        type        = "Service"
        identifiers = [statement.value.service]
      }
      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [statement.value.source_arn]
      }
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"]
    resources = [each.value.queue.arn]
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
  for_each = local.queue_policies

  queue_url = each.value.queue.id
  policy    = data.aws_iam_policy_document.sqs[each.key].json
}

resource "aws_sns_topic_subscription" "pms" {
  for_each = var.pms_integrations

  topic_arn            = aws_sns_topic.this["inventory_updates"].arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.pms[each.key].arn
  raw_message_delivery = true
  filter_policy_scope  = "MessageAttributes"
  filter_policy        = jsonencode({ pms_id = [each.key] })

  depends_on = [aws_sqs_queue_policy.this]
}

# Concurrency per queue is capped at what that PMS accepts.
resource "aws_lambda_event_source_mapping" "pms" {
  for_each = var.pms_integrations

  function_name                      = aws_lambda_function.this["pms_sync_worker"].function_name
  event_source_arn                   = aws_sqs_queue.pms[each.key].arn
  batch_size                         = local.flow.pms_batch_size
  maximum_batching_window_in_seconds = local.flow.pms_batching_window_s
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = each.value.max_concurrency
  }

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Audit store: Aurora PostgreSQL Serverless v2, a writer and a reader
#
# Aurora is the reporting / audit / reconciliation store, not the source of truth:
# pms_sync_worker records what each PMS acknowledged (pms_inventory) on the writer,
# and reconciliation reads the reader endpoint to compare it with DynamoDB.
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

  # Statement logging (DDL and anything slower than 1 s) into the exported postgresql log.
  parameter {
    name         = "log_statement"
    value        = "ddl"
    apply_method = "pending-reboot"
  }

  parameter {
    name         = "log_min_duration_statement"
    value        = "1000"
    apply_method = "pending-reboot"
  }

  tags = local.common_tags
}

resource "aws_rds_cluster" "aurora" {
  cluster_identifier              = local.names.aurora
  engine                          = "aurora-postgresql"
  engine_mode                     = "provisioned"
  engine_version                  = local.flow.aurora_engine_version
  database_name                   = var.db_name
  master_username                 = var.master_username
  master_password                 = data.aws_secretsmanager_random_password.aurora_master.random_password
  port                            = local.flow.aurora_port
  db_subnet_group_name            = aws_db_subnet_group.aurora.name
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.aurora.name
  vpc_security_group_ids          = [aws_security_group.this["aurora"].id]

  serverlessv2_scaling_configuration {
    min_capacity = var.aurora_min_capacity
    max_capacity = var.aurora_max_capacity
  }

  storage_encrypted                   = true
  kms_key_id                          = local.data_key
  backup_retention_period             = var.backup_retention_days
  preferred_backup_window             = "03:00-04:00"
  preferred_maintenance_window        = "sun:05:00-sun:06:00"
  iam_database_authentication_enabled = true
  deletion_protection                 = var.deletion_protection
  copy_tags_to_snapshot               = true
  enabled_cloudwatch_logs_exports     = ["postgresql"]
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${local.names.aurora}-final"

  tags = local.common_tags

  lifecycle {
    # auto_minor_version_upgrade: AWS moves the cluster to the next minor version in the maintenance
    # window; the pinned version is where a new cluster starts, not a downgrade for the next plan.
    ignore_changes = [master_password, engine_version]

    precondition {
      condition     = var.aurora_min_capacity <= var.aurora_max_capacity
      error_message = "aurora_min_capacity must not be greater than aurora_max_capacity."
    }
  }

  depends_on = [aws_cloudwatch_log_group.this]
}

# The writer takes failover first (tier 0); the reader serves reconciliation reads. Aurora makes
# the first instance of a cluster its writer, so the reader is created only once the writer
# exists (two instances created at once may leave "-reader" the writer). Neither names an engine
# version: an instance runs its cluster's, which AWS upgrades in the maintenance window.
locals {
  aurora_instances = {
    writer = { promotion_tier = 0 }
    reader = { promotion_tier = 1 }
  }
}

resource "aws_rds_cluster_instance" "writer" {
  identifier                            = "${local.names.aurora}-writer"
  cluster_identifier                    = aws_rds_cluster.aurora.id
  instance_class                        = "db.serverless"
  engine                                = aws_rds_cluster.aurora.engine
  db_subnet_group_name                  = aws_db_subnet_group.aurora.name
  promotion_tier                        = local.aurora_instances.writer.promotion_tier
  publicly_accessible                   = false
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = local.data_key
  performance_insights_retention_period = 7
  auto_minor_version_upgrade            = true
  copy_tags_to_snapshot                 = true
  monitoring_interval                   = 0

  tags = merge(local.common_tags, { Role = "writer" })
}

resource "aws_rds_cluster_instance" "reader" {
  identifier                            = "${local.names.aurora}-reader"
  cluster_identifier                    = aws_rds_cluster.aurora.id
  instance_class                        = "db.serverless"
  engine                                = aws_rds_cluster.aurora.engine
  db_subnet_group_name                  = aws_db_subnet_group.aurora.name
  promotion_tier                        = local.aurora_instances.reader.promotion_tier
  publicly_accessible                   = false
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = local.data_key
  performance_insights_retention_period = 7
  auto_minor_version_upgrade            = true
  copy_tags_to_snapshot                 = true
  monitoring_interval                   = 0

  tags = merge(local.common_tags, { Role = "reader" })

  depends_on = [aws_rds_cluster_instance.writer]
}

# -----------------------------------------------------------------------------
# Reconciliation, hot path: inventory stream -> reconciliation_checker -> recheck queue
#                           -> reconciliation_checker -> overbooking_resolver
#
# SLA: conflicts detected within 5 s of the collision, hot bookings rechecked within 30 s, at
# any booking rate. The checker is the stream's second consumer (DynamoDB Streams serves two per
# shard without throttling), so what is rechecked never depends on cache_updater, which it
# audits (its mapping is aws_lambda_event_source_mapping.inventory_stream above). Each changed
# night is compared about a second after its change, and again whenever a copy was still within
# its grace (cache 5 s, replicas 10 s, PMS 2 min) until every copy has been compared past it. The queue's consumers scale with the backlog, so the rate of rechecks follows
# the rate of changes instead of a fixed sample.
# -----------------------------------------------------------------------------
resource "aws_sqs_queue" "recheck_dlq" {
  name                              = "${local.name_prefix}-recheck-dlq"
  message_retention_seconds         = local.flow.dlq_retention_s
  kms_master_key_id                 = local.data_key
  kms_data_key_reuse_period_seconds = 300

  tags = local.common_tags
}

resource "aws_sqs_queue" "recheck" {
  name                              = "${local.name_prefix}-recheck"
  delay_seconds                     = local.flow.hot_recheck_delay_s # a change's first comparison; follow-ups set their own
  message_retention_seconds         = local.flow.queue_retention_s
  visibility_timeout_seconds        = 6 * var.lambda_timeout_seconds # AWS: at least six times the function's timeout
  kms_master_key_id                 = local.data_key
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.recheck_dlq.arn
    maxReceiveCount     = local.flow.recheck_max_receives
  })

  tags = local.common_tags
}

resource "aws_sqs_queue_redrive_allow_policy" "recheck_dlq" {
  queue_url = aws_sqs_queue.recheck_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.recheck.arn]
  })
}

resource "aws_lambda_event_source_mapping" "recheck" {
  function_name                      = aws_lambda_function.this["reconciliation_checker"].function_name
  event_source_arn                   = aws_sqs_queue.recheck.arn
  batch_size                         = local.flow.recheck_batch_size
  maximum_batching_window_in_seconds = local.flow.recheck_batching_window_s
  function_response_types            = ["ReportBatchItemFailures"]

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Reconciliation: EventBridge schedule -> Step Functions
#
# The wider audit: every 5 minutes the state machine rechecks a sample of the room-nights
# changed in the last reconciliation_window_seconds (the newest max_hot_keys; every change is
# rechecked by the hot path above) and must finish in < 2 minutes (execution timeout). It
# still looks when the hot path itself is stopped. Drift or overbooking found ->
# overbooking_resolver.
# -----------------------------------------------------------------------------
locals {
  task_retry = [{
    ErrorEquals     = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException"]
    IntervalSeconds = 1
    MaxAttempts     = 3
    BackoffRate     = 2
  }]
}

resource "aws_cloudwatch_event_rule" "reconciliation" {
  name                = local.names.schedule_rule
  description         = "Starts the reconciliation of ${local.name_prefix}"
  schedule_expression = var.reconciliation_schedule_expression
  state               = "ENABLED"

  tags = local.common_tags
}

resource "aws_cloudwatch_event_target" "reconciliation" {
  rule      = aws_cloudwatch_event_rule.reconciliation.name
  target_id = "reconciliation"
  arn       = aws_sfn_state_machine.reconciliation.arn
  role_arn  = aws_iam_role.service["events"].arn
  input     = jsonencode({ trigger = "schedule" })

  retry_policy {
    maximum_event_age_in_seconds = 300 # a later run covers the same window
    maximum_retry_attempts       = 3
  }

  dead_letter_config {
    arn = aws_sqs_queue.failures["async_failures"].arn
  }

  depends_on = [aws_iam_role_policy.service]
}

resource "aws_sfn_state_machine" "reconciliation" {
  name     = local.names.state_machine
  type     = "STANDARD"
  role_arn = aws_iam_role.service["states"].arn
  definition = jsonencode({
    Comment        = "Compare recently changed room-nights across table, cache, replicas and Aurora; resolve what differs."
    StartAt        = "CheckConsistency"
    TimeoutSeconds = local.flow.sfn_execution_timeout_s
    States = {
      CheckConsistency = {
        Type           = "Task"
        Resource       = "arn:${local.partition}:states:::lambda:invoke"
        Parameters     = { FunctionName = aws_lambda_function.this["reconciliation_checker"].arn, "Payload.$" = "$" }
        OutputPath     = "$.Payload"
        TimeoutSeconds = local.flow.sfn_task_timeout_s
        Retry          = local.task_retry
        Next           = "DriftFound"
      }
      DriftFound = {
        Type    = "Choice"
        Choices = [{ Variable = "$.finding_count", NumericGreaterThan = 0, Next = "ResolveDrift" }]
        Default = "Consistent"
      }
      ResolveDrift = {
        Type           = "Task"
        Resource       = "arn:${local.partition}:states:::lambda:invoke"
        Parameters     = { FunctionName = aws_lambda_function.this["overbooking_resolver"].arn, "Payload.$" = "$" }
        OutputPath     = "$.Payload"
        TimeoutSeconds = local.flow.sfn_task_timeout_s
        Retry          = local.task_retry
        End            = true
      }
      Consistent = { Type = "Succeed" }
    }
  })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.this["state_machine"].arn}:*"
    level                  = "ERROR"
    include_execution_data = true # room-night keys and counts; no guest data
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

  depends_on = [aws_iam_role_policy.service]
}

# -----------------------------------------------------------------------------
# Observe: log groups (logs key, var.log_retention_days), created before their writers
# -----------------------------------------------------------------------------
locals {
  log_group_names = merge(
    { for k, name in local.function_names : k => "/aws/lambda/${name}" },
    {
      api_access        = "/aws/apigateway/${local.names.api}/access"
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
# Observe: alarms, each naming the SLA it guards (to the alarms topic)
# -----------------------------------------------------------------------------
locals {
  # The resolver publishes UnresolvedOverbooking and ReplicaDrift once per reconciliation run: an
  # alarm on them is evaluated over the time between runs, or one run's datapoint could never make
  # two one-minute periods breach.
  reconciliation_period_s = tonumber(regex("[0-9]+", var.reconciliation_schedule_expression)) * (
    can(regex("hour", var.reconciliation_schedule_expression)) ? 3600 : 60
  )
  alarm_periods_s = {
    unresolved_overbooking = local.reconciliation_period_s
    replica_drift          = local.reconciliation_period_s
  }
  alarms = merge(
    {
      for r in var.dynamodb_replica_regions : "replication_latency_${replace(r, "-", "_")}" => {
        description = "SLA breach: replication to ${r} slower than ${var.replication_lag_alarm_ms} ms (target < 5 s, alert > 10 s)"
        namespace   = "AWS/DynamoDB"
        metric_name = "ReplicationLatency"
        dimensions  = { TableName = local.names.inventory_table, ReceivingRegion = r }
        statistic   = "Average"
        extended    = null
        threshold   = var.replication_lag_alarm_ms
        comparison  = "GreaterThanThreshold"
        periods     = 2
      }
    },
    {
      for k, q in aws_sqs_queue.pms : "pms_backlog_${k}" => {
        description = "SLA breach: ${k} PMS sync backlog older than 60 s"
        namespace   = "AWS/SQS"
        metric_name = "ApproximateAgeOfOldestMessage"
        dimensions  = { QueueName = q.name }
        statistic   = "Maximum"
        extended    = null
        threshold   = 60
        comparison  = "GreaterThanThreshold"
        periods     = 1
      }
    },
    {
      for k, q in aws_sqs_queue.pms_dlq : "pms_dlq_${k}" => {
        description = "PMS updates for ${k} parked in the DLQ (not delivered; redrive after the fix)"
        namespace   = "AWS/SQS"
        metric_name = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = q.name }
        statistic   = "Maximum"
        extended    = null
        threshold   = 1
        comparison  = "GreaterThanOrEqualToThreshold"
        periods     = 1
      }
    },
    {
      for k in keys(var.pms_integrations) : "circuit_open_${k}" => {
        description = "SLA breach: the ${k} PMS circuit breaker open for 5 minutes (corrections cannot reach the PMS within 2 minutes)"
        namespace   = local.names.metrics
        metric_name = "CircuitOpen"
        dimensions  = { Pms = k }
        statistic   = "Maximum"
        extended    = null
        threshold   = 1
        comparison  = "GreaterThanOrEqualToThreshold"
        periods     = 5
      }
    },
    {
      unresolved_overbooking = {
        description = "SLA breach: overbooking not auto-reassigned within 2 minutes; human ops must rehouse the guest"
        namespace   = local.names.metrics
        metric_name = "UnresolvedOverbooking"
        dimensions  = {}
        statistic   = "Sum"
        extended    = null
        threshold   = 1
        comparison  = "GreaterThanOrEqualToThreshold"
        periods     = 1
      }
      replica_drift = {
        description = "Replica items disagree with the primary beyond the replication SLA (10 s)"
        namespace   = local.names.metrics
        metric_name = "ReplicaDrift"
        dimensions  = {}
        statistic   = "Sum"
        extended    = null
        threshold   = 1
        comparison  = "GreaterThanOrEqualToThreshold"
        periods     = 1
      }
      booking_latency_p95 = {
        description = "SLA breach: booking API P95 latency above 400 ms"
        namespace   = "AWS/ApiGateway"
        metric_name = "Latency"
        dimensions  = { ApiId = aws_apigatewayv2_api.this.id, Stage = "$default" }
        statistic   = null
        extended    = "p95"
        threshold   = 400
        comparison  = "GreaterThanThreshold"
        periods     = 5
      }
      booking_api_5xx = {
        description = "Booking API answered 5xx (bad input is 4xx; 5xx is our fault)"
        namespace   = "AWS/ApiGateway"
        metric_name = "5xx"
        dimensions  = { ApiId = aws_apigatewayv2_api.this.id, Stage = "$default" }
        statistic   = "Sum"
        extended    = null
        threshold   = 1
        comparison  = "GreaterThanOrEqualToThreshold"
        periods     = 1
      }
      hot_recheck_lag = {
        description = "SLA breach: a changed room-night first compared more than ${local.flow.hot_recheck_lag_alarm_s} s after its change (hot bookings rechecked within 30 s)"
        namespace   = local.names.metrics
        metric_name = "HotRecheckLag"
        dimensions  = {}
        statistic   = "Maximum"
        extended    = null
        threshold   = local.flow.hot_recheck_lag_alarm_s
        comparison  = "GreaterThanThreshold"
        periods     = 1
      }
      recheck_dlq = {
        description = "Rechecks parked after ${local.flow.recheck_max_receives} failed attempts: these changed room-nights were not compared (redrive after the fix)"
        namespace   = "AWS/SQS"
        metric_name = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = aws_sqs_queue.recheck_dlq.name }
        statistic   = "Maximum"
        extended    = null
        threshold   = 1
        comparison  = "GreaterThanOrEqualToThreshold"
        periods     = 1
      }
      stream_failures = {
        description = "Stream batches parked after retries: the cache or the hot recheck missed changes (SLA 1 s, 30 s)"
        namespace   = "AWS/SQS"
        metric_name = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = aws_sqs_queue.failures["stream_failures"].name }
        statistic   = "Maximum"
        extended    = null
        threshold   = 1
        comparison  = "GreaterThanOrEqualToThreshold"
        periods     = 1
      }
      async_failures = {
        description = "Reconciliation schedule deliveries or asynchronous invocations failed"
        namespace   = "AWS/SQS"
        metric_name = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = aws_sqs_queue.failures["async_failures"].name }
        statistic   = "Maximum"
        extended    = null
        threshold   = 1
        comparison  = "GreaterThanOrEqualToThreshold"
        periods     = 1
      }
      reconciliation_failed = {
        description = "A reconciliation run failed (drift may go undetected)"
        namespace   = "AWS/States"
        metric_name = "ExecutionsFailed"
        dimensions  = { StateMachineArn = local.state_machine_arn }
        statistic   = "Sum"
        extended    = null
        threshold   = 1
        comparison  = "GreaterThanOrEqualToThreshold"
        periods     = 1
      }
      reconciliation_duration = {
        description = "SLA breach: a reconciliation run took longer than 2 minutes"
        namespace   = "AWS/States"
        metric_name = "ExecutionTime"
        dimensions  = { StateMachineArn = local.state_machine_arn }
        statistic   = "Maximum"
        extended    = null
        threshold   = 120000
        comparison  = "GreaterThanThreshold"
        periods     = 1
      }
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${local.name_prefix}-${replace(each.key, "_", "-")}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric_name
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  extended_statistic  = each.value.extended
  period              = lookup(local.alarm_periods_s, each.key, local.flow.alarm_period_s)
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = each.value.periods
  threshold           = each.value.threshold
  comparison_operator = each.value.comparison
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this["alarms"].arn]
  ok_actions          = [aws_sns_topic.this["alarms"].arn]

  tags = merge(local.common_tags, { Sla = each.key })
}

# -----------------------------------------------------------------------------
# Outputs: what other teams and the test harness use
# -----------------------------------------------------------------------------
output "api_invoke_url" {
  description = "Base URL of the booking API ($default stage)."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "booking_endpoint" {
  description = "POST here to book."
  value       = "${trimsuffix(aws_apigatewayv2_stage.default.invoke_url, "/")}/book"
}

output "booking_client_role_arn" {
  description = "Role the booking channels assume to sign POST /book (execute-api:Invoke on that route only)."
  value       = aws_iam_role.booking_client.arn
}

output "api_id" {
  description = "Id of the HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "dynamodb_table_name" {
  description = "Inventory global table."
  value       = aws_dynamodb_table.inventory.name
}

output "dynamodb_table_arn" {
  description = "ARN of the inventory table in the primary region."
  value       = aws_dynamodb_table.inventory.arn
}

output "dynamodb_stream_arn" {
  description = "Stream of the inventory table (cache_updater reads it)."
  value       = aws_dynamodb_table.inventory.stream_arn
}

output "dynamodb_replica_regions" {
  description = "Regions holding replicas of the inventory table."
  value       = var.dynamodb_replica_regions
}

output "circuit_table_name" {
  description = "Circuit-breaker state per PMS."
  value       = aws_dynamodb_table.circuit.name
}

output "sns_topic_arn" {
  description = "inventory_updates topic."
  value       = aws_sns_topic.this["inventory_updates"].arn
}

output "alarms_topic_arn" {
  description = "Topic every alarm notifies."
  value       = aws_sns_topic.this["alarms"].arn
}

output "pms_queue_urls" {
  description = "Main queue of each PMS integration."
  value       = { for k, q in aws_sqs_queue.pms : k => q.url }
}

output "pms_dlq_urls" {
  description = "DLQ of each PMS integration."
  value       = { for k, q in aws_sqs_queue.pms_dlq : k => q.url }
}

output "failure_queue_urls" {
  description = "stream_failures and async_failures."
  value       = { for k, q in aws_sqs_queue.failures : k => q.url }
}

output "reconciliation_rule_name" {
  description = "EventBridge rule that starts a reconciliation run on the schedule (its failed deliveries go to async_failures)."
  value       = aws_cloudwatch_event_rule.reconciliation.name
}

output "state_machine_arn" {
  description = "Reconciliation state machine."
  value       = aws_sfn_state_machine.reconciliation.arn
}

output "redis_primary_endpoint" {
  description = "ElastiCache primary endpoint address."
  value       = aws_elasticache_replication_group.cache.primary_endpoint_address
}

output "redis_port" {
  description = "Redis port (TLS)."
  value       = local.flow.redis_port
}

output "aurora_cluster_endpoint" {
  description = "Aurora writer endpoint."
  value       = aws_rds_cluster.aurora.endpoint
}

output "aurora_reader_endpoint" {
  description = "Aurora reader endpoint (reconciliation reads)."
  value       = aws_rds_cluster.aurora.reader_endpoint
}

output "lambda_function_names" {
  description = "Function name of each function."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "lambda_function_arns" {
  description = "ARN of each function."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "secret_arns" {
  description = "Secrets the functions read (Redis, Aurora, one per PMS)."
  value       = merge({ for k, s in aws_secretsmanager_secret.this : k => s.arn }, { for k, s in aws_secretsmanager_secret.pms : "pms_${k}" => s.arn })
}

output "metrics_namespace" {
  description = "Namespace of the stack's custom metrics (CircuitOpen, UnresolvedOverbooking, ReplicaDrift)."
  value       = local.names.metrics
}

output "alarm_names" {
  description = "Name of each alarm."
  value       = { for k, a in aws_cloudwatch_metric_alarm.this : k => a.alarm_name }
}

output "vpc_id" {
  description = "The stack's VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets (functions, Redis, Aurora)."
  value       = [for s in aws_subnet.private : s.id]
}

output "security_group_ids" {
  description = "Security group of each tier."
  value       = { for k, sg in aws_security_group.this : k => sg.id }
}

output "kms_key_arns" {
  description = "The data and logs keys."
  value       = { for k, key in aws_kms_key.this : k => key.arn }
}

output "log_group_names" {
  description = "Every log group of the stack."
  value       = local.log_group_names
}

output "lambda_environment_variable_names" {
  description = "Names of the environment variables each function receives (values are in its configuration)."
  value       = { for k, variables in local.lambda_environment : k => sort(keys(variables)) }
}
