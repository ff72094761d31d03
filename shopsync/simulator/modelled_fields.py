"""The fields the simulator models, per schema type (what the generators put in a record).

:mod:`shopsync.simulator.modelled` refuses documents that select anything else.
"""

from __future__ import annotations

_ADDR_FIELDS = (
    "name", "firstName", "lastName", "company", "address1", "address2", "city", "province", "provinceCode",
    "zip", "country", "countryCodeV2", "phone",
)  # fmt: skip
_MONEY = frozenset({"amount", "currencyCode"})
_DISCOUNT = frozenset({
    "title", "status", "startsAt", "endsAt", "createdAt", "updatedAt", "asyncUsageCount", "discountClasses",
})  # fmt: skip
_CODES = frozenset({"codes", "codesCount"})

#: The fields the simulator models, per schema type. Anything else selected on these types is
#: answered with an explicit "not modelled" error. Connection/Edge/PageInfo types are generic.
MODELLED_FIELDS: dict[str, frozenset[str]] = {
    "Order": frozenset({
        "id", "legacyResourceId", "name", "email", "phone", "createdAt", "updatedAt", "processedAt", "cancelledAt",
        "cancelReason", "closedAt", "closed", "confirmed", "displayFinancialStatus",
        "displayFulfillmentStatus", "currencyCode", "presentmentCurrencyCode", "note", "tags", "test",
        "taxesIncluded", "subtotalLineItemsQuantity", "totalPriceSet", "subtotalPriceSet", "totalTaxSet",
        "totalDiscountsSet", "totalShippingPriceSet", "customer", "shippingAddress", "billingAddress",
        "transactions", "refunds", "lineItems", "metafields", "fulfillments", "returns",
        "taxLines", "shippingLines", "discountApplications", "risk",
    }),
    "LineItem": frozenset({
        "id", "name", "title", "sku", "vendor", "quantity", "currentQuantity", "taxable", "requiresShipping",
        "variantTitle", "variant", "product", "originalUnitPriceSet", "discountedUnitPriceSet", "taxLines",
        "discountAllocations",
    }),
    "OrderTransaction": frozenset({
        "id", "kind", "status", "gateway", "createdAt", "processedAt", "amountSet", "test",
        # shopsync/simulator/order_detail_fields.py (derived, not stored)
        "parentTransaction", "formattedGateway", "manualPaymentGateway", "paymentId", "authorizationCode", "errorCode",
    }),
    "Refund": frozenset({"id", "createdAt", "updatedAt", "note", "totalRefundedSet", "processedAt", "refundLineItems", "transactions"}),
    # shopsync/simulator/order_detail_fields.py
    "TaxLine": frozenset({"title", "rate", "ratePercentage", "source", "channelLiable", "priceSet", "price"}),
    "ShippingLine": frozenset({
        "id", "title", "code", "source", "carrierIdentifier", "deliveryCategory", "phone", "custom", "isRemoved",
        "shippingRateHandle", "originalPriceSet", "discountedPriceSet", "currentDiscountedPriceSet", "taxLines",
    }),
    "DiscountCodeApplication": frozenset({"index", "allocationMethod", "targetSelection", "targetType", "value", "code"}),
    "AutomaticDiscountApplication": frozenset({"index", "allocationMethod", "targetSelection", "targetType", "value", "title"}),
    "ManualDiscountApplication": frozenset({
        "index", "allocationMethod", "targetSelection", "targetType", "value", "title", "description",
    }),
    "PricingPercentageValue": frozenset({"percentage"}),
    "DiscountAllocation": frozenset({"allocatedAmountSet", "discountApplication"}),
    "OrderRiskSummary": frozenset({"recommendation", "assessments"}),
    "OrderRiskAssessment": frozenset({"riskLevel", "provider", "facts"}),
    "RiskFact": frozenset({"description", "sentiment"}),
    "App": frozenset({"id", "title"}),
    "RefundLineItem": frozenset({
        "id", "quantity", "restockType", "restocked", "lineItem", "location", "priceSet", "subtotalSet", "totalTaxSet",
    }),
    "Customer": frozenset({
        "id", "legacyResourceId", "firstName", "lastName", "displayName", "defaultEmailAddress",
        "defaultPhoneNumber", "note", "tags", "state", "locale", "taxExempt", "verifiedEmail", "numberOfOrders",
        "amountSpent", "createdAt", "updatedAt", "defaultAddress", "addressesV2", "metafields",
    }),
    "CustomerEmailAddress": frozenset({"emailAddress", "marketingState"}),
    "CustomerPhoneNumber": frozenset({"phoneNumber", "marketingState"}),
    "Product": frozenset({
        "id", "legacyResourceId", "title", "handle", "descriptionHtml", "vendor", "productType", "status", "tags",
        "createdAt", "updatedAt", "publishedAt", "templateSuffix", "options", "variants", "totalInventory",
        "metafields", "media",
    }),
    "ProductOption": frozenset({"id", "name", "position", "values"}),
    "SelectedOption": frozenset({"name", "value"}),
    "ProductVariant": frozenset({
        "id", "legacyResourceId", "title", "displayName", "sku", "barcode", "price", "compareAtPrice", "position",
        "taxable", "inventoryPolicy", "inventoryQuantity", "createdAt", "updatedAt", "selectedOptions",
        "inventoryItem", "product", "metafields",
    }),
    "InventoryItem": frozenset({
        "id", "legacyResourceId", "sku", "tracked", "requiresShipping", "countryCodeOfOrigin",
        "harmonizedSystemCode", "unitCost", "createdAt", "updatedAt", "variant", "inventoryLevels", "inventoryLevel",
    }),
    "InventoryLevel": frozenset({"id", "createdAt", "updatedAt", "isActive", "canDeactivate", "item", "location", "quantities"}),
    "InventoryQuantity": frozenset({"id", "name", "quantity", "updatedAt"}),
    "Location": frozenset({
        "id", "legacyResourceId", "name", "isActive", "fulfillsOnlineOrders", "shipsInventory", "createdAt",
        "updatedAt", "deactivatedAt", "address", "isFulfillmentService", "inventoryLevels", "inventoryLevel",
    }),
    "LocationAddress": frozenset({"address1", "address2", "city", "province", "provinceCode", "zip", "country", "countryCode", "phone"}),
    "Collection": frozenset({"id", "legacyResourceId", "title", "handle", "descriptionHtml", "sortOrder", "templateSuffix", "updatedAt", "productsCount", "products", "metafields"}),
    "BasicEvent": frozenset({
        "id", "action", "subjectType", "subjectId", "createdAt", "message", "appTitle", "attributeToApp",
        "attributeToUser", "criticalAlert", "hasAdditionalContent", "arguments", "additionalContent",
        "additionalData", "secondaryMessage", "subject",
    }),
    "MailingAddress": frozenset({"id", *_ADDR_FIELDS}),
    "MoneyBag": frozenset({"shopMoney", "presentmentMoney"}),
    "MoneyV2": _MONEY,
    "Count": frozenset({"count", "precision"}),
    "PageInfo": frozenset({"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}),
    # shopsync/simulator/shop_record.py
    "Shop": frozenset({
        "id", "name", "email", "contactEmail", "shopOwnerName", "description", "myshopifyDomain", "url", "plan",
        "currencyCode", "enabledPresentmentCurrencies", "ianaTimezone", "timezoneAbbreviation", "timezoneOffset",
        "primaryDomain", "weightUnit", "unitSystem", "taxesIncluded", "taxShipping", "setupRequired",
        "checkoutApiSupported", "createdAt", "updatedAt", "metafields",
    }),
    "ShopPlan": frozenset({"publicDisplayName", "partnerDevelopment", "shopifyPlus"}),
    "Domain": frozenset({"id", "host", "url", "sslEnabled"}),
    # shopsync/simulator/fulfilment_fields.py
    "Fulfillment": frozenset({
        "id", "name", "status", "displayStatus", "createdAt", "updatedAt", "inTransitAt", "deliveredAt",
        "estimatedDeliveryAt", "totalQuantity", "requiresShipping", "location", "trackingInfo",
        "fulfillmentLineItems",
    }),
    "FulfillmentLineItem": frozenset({"id", "quantity", "lineItem", "originalTotalSet", "discountedTotalSet"}),
    "FulfillmentTrackingInfo": frozenset({"company", "number", "url"}),
    "Return": frozenset({"id", "name", "status", "createdAt", "requestApprovedAt", "closedAt", "totalQuantity", "returnLineItems"}),
    "ReturnLineItem": frozenset({
        "id", "quantity", "processedQuantity", "unprocessedQuantity", "processableQuantity", "refundableQuantity",
        "refundedQuantity", "customerNote", "returnReasonNote", "returnReasonDefinition", "fulfillmentLineItem",
    }),
    "ReturnReasonDefinition": frozenset({"id", "handle", "name", "deleted"}),
    # shopsync/simulator/media_fields.py
    "MediaImage": frozenset({"id", "alt", "mediaContentType", "status", "createdAt", "updatedAt", "mimeType", "image"}),
    "Video": frozenset({"id", "alt", "mediaContentType", "status", "createdAt", "updatedAt", "filename", "duration"}),
    "Image": frozenset({"url", "width", "height"}),
    "ExternalVideo": frozenset({"id", "alt", "mediaContentType", "status"}),
    "Model3d": frozenset({"id", "alt", "mediaContentType", "status"}),
    # shopsync/simulator/commerce_records.py
    "DraftOrder": frozenset({
        "id", "legacyResourceId", "name", "email", "status", "createdAt", "updatedAt", "completedAt", "invoiceSentAt",
        "note2", "tags", "taxExempt", "taxesIncluded", "currencyCode", "subtotalPriceSet", "totalTaxSet",
        "totalPriceSet", "customer", "order", "lineItems",
    }),
    "DraftOrderLineItem": frozenset({
        "id", "name", "title", "sku", "vendor", "quantity", "taxable", "requiresShipping", "custom", "variantTitle",
        "variant", "product", "originalUnitPriceSet",
    }),
    "AbandonedCheckout": frozenset({
        "id", "name", "createdAt", "updatedAt", "completedAt", "note", "taxesIncluded", "discountCodes",
        "lineItemsQuantity", "subtotalPriceSet", "totalPriceSet", "customer", "lineItems",
    }),
    "AbandonedCheckoutLineItem": frozenset({
        "id", "title", "sku", "quantity", "variantTitle", "variant", "product", "originalUnitPriceSet",
    }),
    "FulfillmentOrder": frozenset({
        "id", "status", "requestStatus", "createdAt", "updatedAt", "fulfillAt", "orderId", "orderName",
        "orderProcessedAt", "assignedLocation", "lineItems",
    }),
    "FulfillmentOrderAssignedLocation": frozenset({"name", "countryCode", "location"}),
    "FulfillmentOrderLineItem": frozenset({
        "id", "sku", "productTitle", "variantTitle", "totalQuantity", "remainingQuantity", "requiresShipping", "lineItem",
    }),
    "Market": frozenset({"id", "name", "handle", "status", "enabled", "primary", "type", "regions"}),
    "MarketRegionCountry": frozenset({"id", "name", "code"}),
    # shopsync/simulator/metafield_records.py
    "Metafield": frozenset({
        "id", "legacyResourceId", "namespace", "key", "type", "value", "description", "createdAt", "updatedAt",
        "ownerType", "owner",
    }),
    # shopsync/simulator/finance_records.py
    "ShopifyPaymentsAccount": frozenset({"id", "activated", "country", "defaultCurrency", "balanceTransactions", "payouts", "disputes"}),
    "ShopifyPaymentsBalanceTransaction": frozenset({
        "id", "type", "test", "transactionDate", "sourceType", "sourceId", "sourceOrderTransactionId",
        "adjustmentReason", "amount", "fee", "net", "associatedOrder", "associatedPayout",
    }),
    "ShopifyPaymentsAssociatedOrder": frozenset({"id", "name"}),
    "ShopifyPaymentsBalanceTransactionAssociatedPayout": frozenset({"id", "status"}),
    "ShopifyPaymentsPayout": frozenset({
        "id", "legacyResourceId", "status", "transactionType", "issuedAt", "externalTraceId", "gross", "net",
    }),
    "ShopifyPaymentsDispute": frozenset({
        "id", "legacyResourceId", "status", "type", "initiatedAt", "evidenceDueBy", "evidenceSentOn", "finalizedOn",
        "amount", "order", "reasonDetails",
    }),
    "ShopifyPaymentsDisputeReasonDetails": frozenset({"reason", "networkReasonCode"}),
    "GiftCard": frozenset({
        "id", "createdAt", "updatedAt", "deactivatedAt", "enabled", "expiresOn", "lastCharacters", "maskedCode",
        "note", "templateSuffix", "balance", "initialValue", "customer", "order",
    }),
    # shopsync/simulator/discount_records.py: a node and the members of its Discount union
    "DiscountNode": frozenset({"id", "discount"}),
    **{member: _DISCOUNT | extra for member, extra in (
        ("DiscountCodeBasic", _CODES | {"summary"}), ("DiscountCodeBxgy", _CODES | {"summary"}),
        ("DiscountCodeFreeShipping", _CODES | {"summary"}), ("DiscountCodeApp", _CODES),
        ("DiscountAutomaticBasic", {"summary"}), ("DiscountAutomaticBxgy", {"summary", "id"}),
        ("DiscountAutomaticFreeShipping", {"summary"}), ("DiscountAutomaticApp", set()),
    )},
    "DiscountRedeemCode": frozenset({"id", "code", "asyncUsageCount"}),
}


