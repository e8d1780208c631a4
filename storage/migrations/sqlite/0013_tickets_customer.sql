-- A ticket's page lists the customer's other tickets, and a message's page the customer's tickets: by customer.
CREATE INDEX tickets_customer ON tickets (customer_id);
