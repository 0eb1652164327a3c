# Local dev stack (Kafka + PostgreSQL, no Docker); included by the main Makefile.
# See deploy/local/README.md.
LOCAL_STACK_SH := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))/stack.sh

.PHONY: stack-up stack-down stack-status stack-env

stack-up: $(if $(filter sasl_ssl,$(LOCAL_KAFKA_SECURITY)),venv) ## start local Kafka + PostgreSQL (idempotent; LOCAL_KAFKA_SECURITY=sasl_ssl: secured)
	@$(LOCAL_STACK_SH) up

stack-down: ## stop local Kafka + PostgreSQL
	@$(LOCAL_STACK_SH) down

stack-status: ## show whether the local services run
	@$(LOCAL_STACK_SH) status

stack-env: ## print exports, use as: eval "$$(make -s stack-env)"
	@$(LOCAL_STACK_SH) env
